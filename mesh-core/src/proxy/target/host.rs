//! The host half of target normalisation: exactly one host, and one meaning for it.

use std::borrow::Cow;

use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{Request, Version};

use super::TargetError;

/// Checks that a request names at most one host, unambiguously:
///
/// - at most one `Host` header, and it parses as an authority without userinfo;
/// - when the URI has an authority too (HTTP/1.1 absolute form, or HTTP/2 `:authority`), the two
///   name the same host and port ([`same_host`]; a missing port is the scheme's default);
/// - with `require`, an HTTP/1.1 request names a host at all (RFC 9112 §3.2).
pub(super) fn check_host<B>(req: &Request<B>, require: bool) -> Result<(), TargetError> {
    let mut values = req.headers().get_all(HOST).iter();
    let header = values.next();
    if values.next().is_some() {
        return Err(TargetError::DuplicateHost);
    }
    let header = header
        .map(|value| parse_authority(value.as_bytes()))
        .transpose()?;
    let uri = req.uri().authority();
    if uri.is_some_and(|authority| authority.as_str().contains('@')) {
        return Err(TargetError::InvalidHost);
    }
    match (uri, header) {
        (Some(uri), Some(header)) => {
            let default = default_port(req.uri().scheme());
            let port = |a: &Authority| a.port_u16().or(default);
            if !same_host(uri.host(), header.host()) || port(uri) != port(&header) {
                return Err(TargetError::HostMismatch);
            }
        }
        (None, None) if require && req.version() == Version::HTTP_11 => {
            return Err(TargetError::MissingHost);
        }
        _ => {}
    }
    Ok(())
}

fn parse_authority(value: &[u8]) -> Result<Authority, TargetError> {
    let authority = Authority::try_from(value).map_err(|_| TargetError::InvalidHost)?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(TargetError::InvalidHost);
    }
    Ok(authority)
}

fn default_port(scheme: Option<&Scheme>) -> Option<u16> {
    match scheme {
        Some(s) if *s == Scheme::HTTPS => Some(443),
        Some(s) if *s == Scheme::HTTP => Some(80),
        _ => None,
    }
}

/// Whether two host names are the same name: ASCII case does not matter, and neither does one
/// trailing dot (`Secret.Example.` is `secret.example`). Ports are not part of a host.
///
/// ```
/// use mesh_core::proxy::same_host;
///
/// assert!(same_host("Secret.Example.", "secret.example"));
/// assert!(!same_host("secret.example.org", "secret.example"));
/// ```
pub fn same_host(a: &str, b: &str) -> bool {
    without_trailing_dot(a).eq_ignore_ascii_case(without_trailing_dot(b))
}

/// A host name in the form routing tables use: lower case, without a trailing dot. Borrows when it
/// already is.
///
/// ```
/// use mesh_core::proxy::canonical_host;
///
/// assert_eq!(canonical_host("Secret.Example."), "secret.example");
/// assert_eq!(canonical_host("[::1]"), "[::1]");
/// ```
pub fn canonical_host(host: &str) -> Cow<'_, str> {
    let host = without_trailing_dot(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

fn without_trailing_dot(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

/// The host a request is for, without port: the URI's authority (HTTP/1.1 absolute form, HTTP/2
/// `:authority`), else the `Host` header. Not canonicalised (see [`canonical_host`]).
///
/// Only meaningful after [`normalize_target`](super::normalize_target) accepted the request: before
/// that the two may disagree, and this picks the URI's.
pub fn request_host<B>(req: &Request<B>) -> Option<&str> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.host());
    }
    let value = req.headers().get(HOST)?.to_str().ok()?;
    // `[v6]:port`, `name:port` or `name`.
    Some(match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => value,
    })
}
