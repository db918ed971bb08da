//! Which requests may be retried after they were sent.

use http::Method;

/// Marks a request as safe to retry whatever its method: insert it in the request extensions.
///
/// By default only idempotent methods are retried once a request may have reached the server
/// (see [`is_idempotent`]). A `POST` that is idempotent by design (it carries an idempotency key,
/// say) can opt in with this marker, or with a header named by
/// [`RetryPolicy::retryable_header`](super::RetryPolicy::retryable_header).
///
/// ```
/// use http::Request;
/// use mesh_retry::retry::Retryable;
///
/// let mut req = Request::post("http://orders/charge").body(()).unwrap();
/// req.extensions_mut().insert(Retryable);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retryable;

/// Whether `method` is idempotent per RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE.
///
/// Sending such a request twice has the same intended effect on the server as sending it once, so
/// it may be retried even when the first attempt might have been processed.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}
