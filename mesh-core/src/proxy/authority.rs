//! Pointing a request at the endpoint chosen for it.

use std::net::SocketAddr;

use http::Request;
use http::header::{HOST, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};

/// Rewrites the request URI's scheme and authority to the chosen endpoint, keeping path and query.
///
/// **`Host` is kept** by default, so name-based virtual hosting keeps working behind the proxy: an
/// existing `Host` header is left as is, and when there is none (HTTP/2 requests carry the name in the
/// URI, as `:authority`) the original authority is copied into a new `Host` header before the URI
/// changes. To address the endpoint by its own name instead, set `Host` afterwards:
/// `req.headers_mut().insert(HOST, HeaderValue::from_str(authority.as_str())?)`.
///
/// The URI authority is what an HTTP/2 client sends as `:authority`, and RFC 9113 §8.3.1 lets servers
/// reject requests whose `Host` names a different origin. Over HTTP/2 to an upstream that checks,
/// either keep the original authority in the URI (mesh-core's client connects to its endpoint address
/// whatever the URI says) or set `Host` to match as above.
///
/// A request without a path (`CONNECT`'s authority form) gets `/`, so do not call this for `CONNECT`.
///
/// ```
/// use http::{Request, uri::Scheme};
/// use mesh_core::proxy::{set_endpoint_authority, socket_authority};
///
/// let mut req = Request::get("https://api.example.com/v1/orders?page=2").body(()).unwrap();
/// let endpoint = socket_authority("10.1.2.3:8080".parse().unwrap());
/// set_endpoint_authority(&mut req, Scheme::HTTP, endpoint);
///
/// assert_eq!(req.uri(), "http://10.1.2.3:8080/v1/orders?page=2");
/// assert_eq!(req.headers()["host"], "api.example.com");
/// ```
pub fn set_endpoint_authority<B>(req: &mut Request<B>, scheme: Scheme, authority: Authority) {
    if !req.headers().contains_key(HOST)
        && let Some(original) = req.uri().authority()
        && let Ok(host) = HeaderValue::from_str(original.as_str())
    {
        req.headers_mut().insert(HOST, host);
    }

    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(scheme);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    // With scheme, authority and path all present `from_parts` cannot fail; should it ever, the
    // request is left pointing nowhere rather than at the wrong place.
    *req.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
}

/// The URI authority for a socket address: `10.0.0.1:80`, or `[2001:db8::1]:443` for IPv6.
///
/// An IPv6 zone (`%eth0`), which has no place in a URI authority outside RFC 6874, is left out.
pub fn socket_authority(addr: SocketAddr) -> Authority {
    let text = match addr {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    };
    // An IP literal with a port is always a valid authority.
    Authority::try_from(text).expect("a socket address is a valid URI authority")
}
