//! [`AuthorityCache`]: `server.address` and `server.port` of a request, without copying the host
//! for every request.

use std::sync::{PoisonError, RwLock};

use http::Request;
use http::uri::Authority;
use opentelemetry::StringValue;

/// How many distinct authorities a layer remembers: 8. A client layer usually sends to one
/// service (one authority); a few more cover a client shared by several. Past that, the oldest
/// entry is replaced, and a request to an authority not remembered costs one copy of its host,
/// as it would without the cache.
const CAPACITY: usize = 8;

/// The authorities a [`ClientTrace`](super::ClientTrace) (and its clones, and the other services
/// its layer built) has seen lately, each with its host as a shared attribute value.
///
/// Without it, every request copied its host out of the URI or `Host` header, then copied it
/// again for the span and for the duration point (three allocations). With it, a request to a
/// remembered authority takes the value by reference count. The lock is held for a comparison of
/// at most [`CAPACITY`] short strings.
#[derive(Debug, Default)]
pub(crate) struct AuthorityCache {
    entries: RwLock<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    list: Vec<Entry>,
    /// The entry to replace next once the list is full.
    next: usize,
}

#[derive(Debug)]
struct Entry {
    /// The authority as written in the request (`host` or `host:port`).
    raw: Box<str>,
    host: StringValue,
    /// The port written in the authority, if any.
    port: Option<u16>,
}

/// `server.address` and `server.port` of one request.
#[derive(Debug)]
pub(crate) struct ServerAddress {
    pub(crate) host: StringValue,
    pub(crate) port: Option<u16>,
}

impl AuthorityCache {
    /// `server.address` and `server.port`: from the URI, else the `Host` header; the port defaults
    /// from the scheme as the semantic conventions ask. `None` when neither names an authority
    /// (or the `Host` header is not a valid one).
    pub(crate) fn server_address<B>(
        &self,
        req: &Request<B>,
        scheme: Option<&str>,
    ) -> Option<ServerAddress> {
        let default_port = match scheme {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        };
        let raw = match req.uri().authority() {
            Some(authority) => authority.as_str(),
            None => req.headers().get(http::header::HOST)?.to_str().ok()?,
        };
        // A hit only reads: clones of the layer on other threads look up side by side.
        {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = entries.list.iter().find(|e| *e.raw == *raw) {
                return Some(ServerAddress {
                    host: entry.host.clone(),
                    port: entry.port.or(default_port),
                });
            }
        }
        // Parsed as `Authority` whether it came from the URI (already valid) or `Host`.
        let authority = match req.uri().authority() {
            Some(authority) => authority.clone(),
            None => raw.parse::<Authority>().ok()?,
        };
        let entry = Entry {
            raw: raw.into(),
            host: StringValue::from(std::sync::Arc::<str>::from(authority.host())),
            port: authority.port_u16(),
        };
        let found = ServerAddress {
            host: entry.host.clone(),
            port: entry.port.or(default_port),
        };
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.list.iter().any(|e| e.raw == entry.raw) {
            // Another clone cached it meanwhile.
        } else if entries.list.len() < CAPACITY {
            entries.list.push(entry);
        } else {
            let next = entries.next;
            entries.list[next] = entry;
            entries.next = (next + 1) % CAPACITY;
        }
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(cache: &AuthorityCache, req: &Request<()>) -> Option<(String, Option<u16>)> {
        let scheme = req.uri().scheme_str();
        cache
            .server_address(req, scheme)
            .map(|a| (a.host.as_str().to_owned(), a.port))
    }

    #[test]
    fn the_uri_wins_over_host_and_ports_default_from_the_scheme() {
        let cache = AuthorityCache::default();
        let req = Request::get("http://orders:8080/x")
            .header("host", "other")
            .body(())
            .unwrap();
        assert_eq!(address(&cache, &req), Some(("orders".into(), Some(8080))));
        let req = Request::get("https://orders/x").body(()).unwrap();
        assert_eq!(address(&cache, &req), Some(("orders".into(), Some(443))));
        // The same authority under another scheme: the cached entry keeps no default port.
        let req = Request::get("http://orders/x").body(()).unwrap();
        assert_eq!(address(&cache, &req), Some(("orders".into(), Some(80))));
        let req = Request::get("/x")
            .header("host", "[::1]:9")
            .body(())
            .unwrap();
        assert_eq!(address(&cache, &req), Some(("[::1]".into(), Some(9))));
        let req = Request::get("/x").body(()).unwrap();
        assert_eq!(address(&cache, &req), None);
        let req = Request::get("/x").header("host", "a b").body(()).unwrap();
        assert_eq!(address(&cache, &req), None);
    }

    #[test]
    fn a_remembered_authority_shares_its_host_and_the_oldest_is_replaced() {
        let cache = AuthorityCache::default();
        let req = Request::get("http://orders:8080/").body(()).unwrap();
        let first = cache.server_address(&req, Some("http")).unwrap();
        let again = cache.server_address(&req, Some("http")).unwrap();
        assert!(std::ptr::eq(first.host.as_str(), again.host.as_str()));
        for i in 0..CAPACITY {
            let req = Request::get(format!("http://host{i}/")).body(()).unwrap();
            cache.server_address(&req, Some("http")).unwrap();
        }
        let entries = cache.entries.read().unwrap();
        assert_eq!(entries.list.len(), CAPACITY);
        assert!(entries.list.iter().all(|e| &*e.raw != "orders:8080"));
    }
}
