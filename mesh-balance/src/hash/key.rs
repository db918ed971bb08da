//! Which part of a request decides where it sticks.

use std::sync::Arc;

use http::Request;
use http::header::{COOKIE, HeaderName};

use super::hash_bytes;

/// The part of a request that keys consistent hashing: a header, a cookie or the path.
///
/// Requests with the same key value go to the same endpoint (while it is in the set and not
/// above its bounded load). A request without the key has no stickiness ([`hash`](Self::hash)
/// returns `None`) and should be balanced normally; an empty value counts as absent, so that
/// every keyless client does not pile onto one endpoint.
///
/// ```
/// use mesh_balance::hash::HashKey;
///
/// let key = HashKey::cookie("session");
/// let req = http::Request::builder()
///     .header("cookie", "theme=dark; session=abc123")
///     .body(())
///     .unwrap();
/// assert_eq!(key.value(&req), Some(&b"abc123"[..]));
/// assert_eq!(key.hash(&req), Some(mesh_balance::hash::hash_bytes(b"abc123")));
/// let header = HashKey::header(http::HeaderName::from_static("x-user"));
/// assert_eq!(header.hash(&req), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashKey {
    /// The first value of this header.
    Header(HeaderName),
    /// The value of this cookie (from any `Cookie` header; surrounding double quotes removed).
    Cookie(Arc<str>),
    /// The URI path, without the query.
    Path,
}

impl HashKey {
    /// Keys on the first value of header `name`.
    pub fn header(name: HeaderName) -> Self {
        Self::Header(name)
    }

    /// Keys on the value of cookie `name`.
    pub fn cookie(name: &str) -> Self {
        Self::Cookie(name.into())
    }

    /// Keys on the request path.
    pub fn path() -> Self {
        Self::Path
    }

    /// The key's bytes in `req`, or `None` when absent or empty.
    pub fn value<'r, B>(&self, req: &'r Request<B>) -> Option<&'r [u8]> {
        let value = match self {
            Self::Header(name) => req.headers().get(name).map(|v| v.as_bytes()),
            Self::Cookie(name) => cookie(req, name),
            Self::Path => Some(req.uri().path().as_bytes()),
        };
        value.filter(|v| !v.is_empty())
    }

    /// The stable hash ([`hash_bytes`]) of the key's bytes, or `None` when absent or empty.
    pub fn hash<B>(&self, req: &Request<B>) -> Option<u64> {
        self.value(req).map(hash_bytes)
    }
}

/// Finds cookie `name` in the `Cookie` headers (RFC 6265 §4.2: `name=value` pairs separated by
/// `; `). Malformed pairs are skipped, not errors.
fn cookie<'r, B>(req: &'r Request<B>, name: &str) -> Option<&'r [u8]> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .flat_map(|header| header.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (key, value) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
            (key == name.as_bytes()).then(|| unquote(value))
        })
}

fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        other => other,
    }
}
