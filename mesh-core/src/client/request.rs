//! Shapes a request for the wire: the URI form and headers each HTTP version expects.

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Method, Request, Uri, Version};

use crate::Endpoint;
use crate::error::BoxError;

/// HTTP/1.1: origin-form target (`/path?query`, RFC 9112 §3.2.1) and a `Host` header, taken from the
/// URI's authority when it has one and from the endpoint address otherwise. `CONNECT` keeps its
/// authority-form target. Versions other than HTTP/1.0 are sent as HTTP/1.1.
pub(crate) fn prepare_http1<B>(
    request: &mut Request<B>,
    endpoint: &Endpoint,
) -> Result<(), BoxError> {
    if request.version() != Version::HTTP_10 {
        *request.version_mut() = Version::HTTP_11;
    }
    if !request.headers().contains_key(HOST) {
        let host = match request.uri().authority() {
            // RFC 9112 §3.2: Host carries host and port, never user information.
            Some(authority) => match authority.port() {
                Some(port) => HeaderValue::try_from(format!("{}:{port}", authority.host()))?,
                None => HeaderValue::from_str(authority.host())?,
            },
            None => HeaderValue::try_from(endpoint.addr().to_string())?,
        };
        request.headers_mut().insert(HOST, host);
    }
    if request.method() != Method::CONNECT && request.uri().authority().is_some() {
        let target = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() = Uri::from(target);
    }
    Ok(())
}

/// HTTP/2: hyper sends the URI's scheme and authority as the `:scheme` and `:authority` pseudo-headers
/// (RFC 9113 §8.3.1), so both must be present. A missing scheme becomes `http`; a missing authority is
/// taken from the `Host` header, or else from the endpoint address.
pub(crate) fn prepare_http2<B>(
    request: &mut Request<B>,
    endpoint: &Endpoint,
) -> Result<(), BoxError> {
    *request.version_mut() = Version::HTTP_2;
    let uri = request.uri();
    if uri.scheme().is_some() && uri.authority().is_some() {
        return Ok(());
    }
    let authority = match uri.authority() {
        Some(authority) => authority.clone(),
        None => match request
            .headers()
            .get(HOST)
            .map(|h| Authority::try_from(h.as_bytes()))
        {
            Some(Ok(authority)) => authority,
            _ => Authority::try_from(endpoint.addr().to_string())?,
        },
    };
    let mut parts = std::mem::take(request.uri_mut()).into_parts();
    parts.scheme.get_or_insert(Scheme::HTTP);
    parts.authority = Some(authority);
    parts
        .path_and_query
        .get_or_insert_with(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from_parts(parts)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint::new("127.0.0.1:8080".parse().unwrap())
    }

    fn request(uri: &str) -> Request<()> {
        Request::builder().uri(uri).body(()).unwrap()
    }

    #[test]
    fn http1_uses_origin_form_and_sets_host() {
        let mut req = request("http://user@orders.svc:81/a/b?x=1");
        *req.version_mut() = Version::HTTP_2;
        prepare_http1(&mut req, &endpoint()).unwrap();
        assert_eq!(req.uri(), "/a/b?x=1");
        assert_eq!(req.headers()[HOST], "orders.svc:81");
        assert_eq!(req.version(), Version::HTTP_11);

        let mut req = request("/only/path");
        prepare_http1(&mut req, &endpoint()).unwrap();
        assert_eq!(req.uri(), "/only/path");
        assert_eq!(req.headers()[HOST], "127.0.0.1:8080");
    }

    #[test]
    fn http1_keeps_an_existing_host_and_connect_targets() {
        let mut req = request("http://a.example/x");
        req.headers_mut()
            .insert(HOST, HeaderValue::from_static("b.example"));
        prepare_http1(&mut req, &endpoint()).unwrap();
        assert_eq!(req.headers()[HOST], "b.example");
        assert_eq!(req.uri(), "/x");

        let mut req = Request::builder()
            .method(Method::CONNECT)
            .uri("tunnel.example:443")
            .body(())
            .unwrap();
        prepare_http1(&mut req, &endpoint()).unwrap();
        assert_eq!(req.uri(), "tunnel.example:443");
        assert_eq!(req.headers()[HOST], "tunnel.example:443");
    }

    #[test]
    fn http2_fills_scheme_and_authority() {
        let mut req = request("/p?q");
        prepare_http2(&mut req, &endpoint()).unwrap();
        assert_eq!(req.uri(), "http://127.0.0.1:8080/p?q");
        assert_eq!(req.version(), Version::HTTP_2);

        let mut req = request("/p");
        req.headers_mut()
            .insert(HOST, HeaderValue::from_static("orders.svc"));
        prepare_http2(&mut req, &endpoint()).unwrap();
        assert_eq!(req.uri(), "http://orders.svc/p");

        let mut req = request("https://orders.svc/p");
        prepare_http2(&mut req, &endpoint()).unwrap();
        assert_eq!(req.uri(), "https://orders.svc/p");
    }
}
