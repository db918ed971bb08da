//! `x-request-id`: kept when the client sent a sane one, else generated; set on the upstream
//! request and echoed on every response (404 and 429 included).

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::Body;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};

/// The header carrying the request id.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-supplied id kept.
const MAX_LEN: usize = 128;

/// The public service: never fails.
pub(crate) type Edge = BoxCloneService<Request<Incoming>, Response<Body>, Infallible>;

/// An id the client sent is kept if it is 1 to 128 visible ASCII characters (no spaces, no
/// control characters): anything else could be used to forge log lines.
fn sane(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// 128 random bits as 32 lower-case hex digits.
fn generate(rng: &Mutex<fastrand::Rng>) -> HeaderValue {
    let bits = rng.lock().unwrap_or_else(PoisonError::into_inner).u128(..);
    HeaderValue::from_str(&format!("{bits:032x}")).expect("hex digits are a valid header value")
}

/// Wraps `inner` so every request carries an id upstream and every response echoes it.
pub(crate) fn layer(inner: Edge, seed: u64) -> Edge {
    let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)));
    let service = ServiceBuilder::new().service_fn(move |mut req: Request<Incoming>| {
        let id = match req.headers().get(&REQUEST_ID) {
            Some(id) if sane(id) => id.clone(),
            _ => generate(&rng),
        };
        req.headers_mut().insert(REQUEST_ID, id.clone());
        let inner = inner.clone();
        async move {
            let mut res = inner.oneshot(req).await?;
            res.headers_mut().insert(REQUEST_ID, id);
            Ok::<_, Infallible>(res)
        }
    });
    BoxCloneService::new(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanity_rules() {
        assert!(sane(&HeaderValue::from_static("abc-123")));
        assert!(!sane(&HeaderValue::from_static("")));
        assert!(!sane(&HeaderValue::from_static("a b")));
        assert!(!sane(&HeaderValue::from_str(&"a".repeat(129)).unwrap()));
        assert!(sane(&HeaderValue::from_str(&"a".repeat(128)).unwrap()));
    }

    #[test]
    fn generated_ids_are_32_hex_digits_and_differ() {
        let rng = Mutex::new(fastrand::Rng::with_seed(7));
        let (a, b) = (generate(&rng), generate(&rng));
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a, b);
    }
}
