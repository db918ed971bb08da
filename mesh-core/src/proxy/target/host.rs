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
        .map(|value| parse_host_header(value.as_bytes()))
        .transpose()?;
    let uri = req.uri().authority();
    if uri.is_some_and(|authority| authority.as_str().contains('@')) {
        return Err(TargetError::InvalidHost);
    }
    match (uri, header) {
        (Some(uri), Some(header)) => {
            let default = default_port(req.uri().scheme());
            if !same_host(uri.host(), header.host)
                || uri.port_u16().or(default) != header.port.or(default)
            {
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

/// A `Host` header's host and port, borrowed from the header value.
#[derive(Debug, PartialEq, Eq)]
struct HostPort<'a> {
    host: &'a str,
    /// As `http::uri::Authority::port_u16` reads it: `None` without a port, or with one that is
    /// not a `u16`.
    port: Option<u16>,
}

/// Parses a `Host` value as the `http` crate parses an authority, refusing userinfo and an empty
/// host. The usual value (a name or IPv4 address of letters, digits, `.` and `-`, with an optional
/// port of digits) is checked in place; anything else (IP literals, percent-encoding, other
/// characters) goes through `Authority::try_from`, which copies the bytes.
fn parse_host_header(value: &[u8]) -> Result<HostPort<'_>, TargetError> {
    if let Some(simple) = simple_host(value) {
        return Ok(simple);
    }
    let authority = Authority::try_from(value).map_err(|_| TargetError::InvalidHost)?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(TargetError::InvalidHost);
    }
    // Accepted, so `value` is ASCII and, without userinfo, starts with the host.
    let text = std::str::from_utf8(value).map_err(|_| TargetError::InvalidHost)?;
    Ok(HostPort {
        host: &text[..authority.host().len()],
        port: authority.port_u16(),
    })
}

/// `host[:port]` with a non-empty host of ASCII letters, digits, `.` and `-` and a port of digits
/// only (maybe none): always a valid authority for the `http` crate. `None` for anything else.
fn simple_host(value: &[u8]) -> Option<HostPort<'_>> {
    let (host, port) = match value.iter().position(|&b| b == b':') {
        Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
        None => (value, None),
    };
    let host_byte = |b: &u8| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-';
    if host.is_empty() || !host.iter().all(host_byte) {
        return None;
    }
    if port.is_some_and(|port| !port.iter().all(u8::is_ascii_digit)) {
        return None;
    }
    // Only ASCII was accepted above.
    let host = std::str::from_utf8(host).ok()?;
    let port = match port {
        Some(port) => std::str::from_utf8(port).ok()?.parse::<u16>().ok(),
        None => None,
    };
    Some(HostPort { host, port })
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What `parse_host_header` must agree with: the `http` crate's parse of the whole value.
    fn reference(value: &[u8]) -> Result<(String, Option<u16>), TargetError> {
        let authority = Authority::try_from(value).map_err(|_| TargetError::InvalidHost)?;
        if authority.as_str().contains('@') || authority.host().is_empty() {
            return Err(TargetError::InvalidHost);
        }
        Ok((authority.host().to_owned(), authority.port_u16()))
    }

    fn agrees(value: &[u8]) {
        let ours = parse_host_header(value).map(|hp| (hp.host.to_owned(), hp.port));
        assert_eq!(
            ours,
            reference(value),
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }

    #[test]
    fn host_values_parse_as_the_http_crate_parses_them() {
        for value in [
            "example.com",
            "Example.COM:8080",
            "a",
            "a:",
            "a:0",
            "a:65535",
            "a:65536",
            "a:0000080",
            "a:+80",
            "a:1:2",
            ":80",
            "",
            "10.0.0.1:443",
            "[::1]",
            "[::1]:8080",
            "[::1",
            "user@host",
            "user:pw@host:80",
            "ho%20st",
            "under_score.example",
            "tilde~.example",
            "sp ace",
            "a/b",
            "a?b",
            "a#b",
            "é.example",
        ] {
            agrees(value.as_bytes());
        }
        // The usual value is checked in place.
        assert_eq!(
            simple_host(b"reviews:9080"),
            Some(HostPort {
                host: "reviews",
                port: Some(9080)
            })
        );
    }

    proptest! {
        #[test]
        fn any_host_value_parses_as_the_http_crate_parses_it(
            value in proptest::collection::vec(
                prop::sample::select(b"aZ09.-_~:[]@%/?# \x7f\xc3".to_vec()), 0..12)
        ) {
            agrees(&value);
        }
    }
}
