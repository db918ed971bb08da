//! HTTP responses for scripted backends, built in one call.
//!
//! Tests answer requests with a status (and sometimes a body) far more often than with anything
//! else; these keep that a one-liner whatever body type the service under test uses.

use http::{Response, StatusCode};

/// A response with `status` and `body`.
///
/// # Panics
///
/// If `status` is not a valid HTTP status code (100–999): a mistake in the test itself.
pub fn with_body<B>(status: u16, body: B) -> Response<B> {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or_else(|_| panic!("{status} is not an HTTP status"));
    response
}

/// A response with `status` and an empty `()` body, for services that never read bodies.
///
/// # Panics
///
/// As [`with_body`].
pub fn status(status: u16) -> Response<()> {
    with_body(status, ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_body_are_set() {
        let response = with_body(503, "busy");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(*response.body(), "busy");
        assert_eq!(status(204).status(), StatusCode::NO_CONTENT);
    }
}
