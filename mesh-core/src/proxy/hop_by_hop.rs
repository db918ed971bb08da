//! Removing the headers that belong to one connection, not to the message.

use http::header::{CONNECTION, HeaderName, HeaderValue, TE};
use http::{Extensions, HeaderMap};

use crate::server::{CloseHandle, ConnectionInfo};

/// Hop-by-hop headers removed whether or not `Connection` names them: those RFC 9110 §7.6.1 lists
/// and those of RFC 2616 §13.5.1 that old agents still send without naming them.
const ALWAYS_HOP_BY_HOP: [&str; 7] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the values that belong to the inbound connection, not to the message: mesh-core's
/// server puts [`ConnectionInfo`] and the connection's [`CloseHandle`] in every request's
/// extensions. A proxy forwarding the request to a client stack takes them out first: nothing on
/// the client side reads them, and a retry layer copies every extension into each attempt.
///
/// ```
/// use http::Request;
/// use mesh_core::proxy::remove_connection_extensions;
/// use mesh_core::server::CloseHandle;
///
/// let mut req = Request::new(());
/// req.extensions_mut().insert(CloseHandle::new());
/// req.extensions_mut().insert(7_u32);
/// remove_connection_extensions(req.extensions_mut());
/// assert!(req.extensions().get::<CloseHandle>().is_none());
/// assert_eq!(req.extensions().get::<u32>(), Some(&7));
/// ```
pub fn remove_connection_extensions(extensions: &mut Extensions) {
    extensions.remove::<ConnectionInfo>();
    extensions.remove::<CloseHandle>();
}

/// Removes the hop-by-hop headers a proxy must not forward (RFC 9110 §7.6.1).
///
/// Removed: `Connection` and every header it names (comma-separated, case-insensitive; empty or
/// malformed names are skipped), then `Keep-Alive`, `Proxy-Connection`, `Proxy-Authenticate`,
/// `Proxy-Authorization`, `Trailer`, `Transfer-Encoding`, `Upgrade` and `TE`.
///
/// One exception: `TE` whose value is the single token `trailers` (any case, surrounding whitespace
/// ignored) is kept, as lowercase `trailers`. gRPC requires it end to end to know that the client
/// accepts trailers, and HTTP/2 allows `TE` with exactly that value and no other (RFC 9113 §8.2.2).
///
/// A proxy that forwards upgrades (WebSocket) must take `Upgrade` and `Connection: upgrade` before
/// calling this and set them again on the outbound request.
///
/// ```
/// use http::HeaderMap;
/// use mesh_core::proxy::remove_hop_by_hop_headers;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("connection", "keep-alive, X-Session".parse().unwrap());
/// headers.insert("x-session", "abc".parse().unwrap());
/// headers.insert("keep-alive", "timeout=5".parse().unwrap());
/// headers.insert("te", "trailers".parse().unwrap());
/// headers.insert("content-type", "application/grpc".parse().unwrap());
///
/// remove_hop_by_hop_headers(&mut headers);
///
/// assert_eq!(headers.len(), 2);
/// assert_eq!(headers["te"], "trailers");
/// assert_eq!(headers["content-type"], "application/grpc");
/// ```
pub fn remove_hop_by_hop_headers(headers: &mut HeaderMap) {
    // The usual message has none: one pass over its names then spares the lookups below, each of
    // which parses and hashes a name.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let keep_te_trailers = is_te_trailers(headers);

    let mut lines = headers.get_all(CONNECTION).iter();
    match (lines.next(), lines.next()) {
        (None, _) => {}
        (Some(line), None) => {
            // The usual case, one line: a clone shares its bytes, and each name is looked up in
            // place (the map lower-cases a name it is asked for without allocating).
            let line = line.clone();
            headers.remove(CONNECTION);
            for token in line.as_bytes().split(|&b| b == b',') {
                if let Ok(name) = std::str::from_utf8(token.trim_ascii()) {
                    headers.remove(name);
                }
            }
        }
        (Some(_), Some(_)) => {
            // Collect first: the names borrow from the values being removed.
            let named: Vec<HeaderName> = headers
                .get_all(CONNECTION)
                .iter()
                .flat_map(|value| value.as_bytes().split(|&b| b == b','))
                .filter_map(|token| HeaderName::from_bytes(token.trim_ascii()).ok())
                .collect();
            headers.remove(CONNECTION);
            for name in &named {
                headers.remove(name);
            }
        }
    }
    for name in ALWAYS_HOP_BY_HOP {
        headers.remove(name);
    }

    headers.remove(TE);
    if keep_te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// Whether `name` is removed whatever `Connection` says (`Connection` and `TE` included). A
/// header that `Connection` names is removed only when `Connection` is present, which this
/// reports.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == CONNECTION || name == TE || ALWAYS_HOP_BY_HOP.contains(&name.as_str())
}

/// Whether the request's `TE` is exactly the one token `trailers`, across all its field lines.
fn is_te_trailers(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(TE).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"trailers"),
        _ => false,
    }
}
