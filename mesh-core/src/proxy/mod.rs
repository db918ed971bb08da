//! Header rules for forwarding a request to another server.
//!
//! A proxy (sidecar, gateway) forwarding a request must drop the headers that describe its own
//! connection, point the request at the endpoint it chose, and may record itself on the way. These are
//! small pure functions over `http` types, to call between receiving a request and handing it to
//! the client:
//!
//! - [`remove_hop_by_hop_headers`]: RFC 9110 §7.6.1, keeping `TE: trailers` for gRPC;
//! - [`set_endpoint_authority`] (+ [`socket_authority`]): new scheme and authority, same path and
//!   query, `Host` kept for virtual hosting;
//! - [`ForwardedElement`]: RFC 7239 `Forwarded` (`for`, `by`, `proto`, `host`);
//! - [`append_via`]: RFC 9110 `Via`;
//! - [`normalize_target`] and [`NormalizeTargetLayer`]: one host and one normalised path before
//!   authorization and routing decide on them (and forwarded as such), so that `/x/../admin` or a
//!   second `Host` header cannot slip past a rule.
//!
//! ```
//! use http::{Request, Version, uri::Scheme};
//! use mesh_core::proxy::{
//!     ForwardedElement, ViaName, append_via, remove_hop_by_hop_headers, set_endpoint_authority,
//!     socket_authority,
//! };
//!
//! let mut req = Request::get("/orders")
//!     .header("host", "shop.example")
//!     .header("connection", "close")
//!     .body(())
//!     .unwrap();
//! let client: std::net::SocketAddr = "192.0.2.7:50000".parse().unwrap();
//! let endpoint: std::net::SocketAddr = "10.0.0.5:8080".parse().unwrap();
//! let via = ViaName::new("mesh").unwrap();
//!
//! remove_hop_by_hop_headers(req.headers_mut());
//! ForwardedElement::new()
//!     .for_node(client.ip())
//!     .proto(Scheme::HTTP)
//!     .append_to(req.headers_mut());
//! let version = req.version();
//! append_via(req.headers_mut(), version, &via);
//! set_endpoint_authority(&mut req, Scheme::HTTP, socket_authority(endpoint));
//!
//! assert_eq!(req.uri(), "http://10.0.0.5:8080/orders");
//! assert_eq!(req.headers()["host"], "shop.example");
//! assert_eq!(req.headers()["forwarded"], "for=192.0.2.7;proto=http");
//! assert_eq!(req.headers()["via"], "1.1 mesh");
//! assert!(!req.headers().contains_key("connection"));
//! # let _ = Version::HTTP_11;
//! ```

mod authority;
mod forwarded;
mod hop_by_hop;
mod target;
mod via;

use http::HeaderMap;
use http::header::{Entry, HeaderName, HeaderValue};

pub use authority::{set_endpoint_authority, socket_authority};
pub use forwarded::{ForwardedElement, ForwardedNode};
pub use hop_by_hop::{remove_connection_extensions, remove_hop_by_hop_headers};
pub use target::{
    EscapedSlashes, NormalizeTarget, NormalizeTargetFuture, NormalizeTargetLayer, TargetError,
    TargetRules, canonical_host, normalize_path, normalize_target, request_host, same_host,
};
pub use via::{InvalidViaName, ViaName, append_via};

/// Appends `element` to the list header `name`: joined to its last field line with `, `, or as a new
/// field line when there is none. `element` must be valid header-value bytes; if it is not, nothing
/// is written.
fn append_list_element(headers: &mut HeaderMap, name: HeaderName, element: &[u8]) {
    match headers.entry(name) {
        Entry::Occupied(mut lines) => {
            if let Some(last) = lines.iter_mut().next_back() {
                let mut joined = Vec::with_capacity(last.len() + 2 + element.len());
                joined.extend_from_slice(last.as_bytes());
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(element);
                if let Ok(joined) = HeaderValue::from_bytes(&joined) {
                    *last = joined;
                }
            }
        }
        Entry::Vacant(slot) => {
            if let Ok(value) = HeaderValue::from_bytes(element) {
                slot.insert(value);
            }
        }
    }
}
