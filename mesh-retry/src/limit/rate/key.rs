//! [`KeyExtractor`]: which bucket a request draws from.

use std::hash::Hash;
use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue};
use http::{Extensions, HeaderMap};
use mesh_core::server::ConnectionInfo;

/// Picks the rate-limit key of a request from its headers and extensions.
///
/// Requests for which it returns `None` all share one bucket, so leaving out a header does not
/// escape the limit. Implemented by [`Global`], [`HeaderKey`], [`PeerIp`], and by closures
/// `Fn(&HeaderMap, &Extensions) -> Option<K>` — for example to key on the verified peer identity
/// that mesh-tls puts in the extensions:
///
/// ```
/// use http::{Extensions, HeaderMap};
/// use mesh_retry::limit::{RateLimitConfig, RateLimitLayer};
///
/// #[derive(Clone)]
/// struct PeerName(String); // stands in for mesh-tls's peer identity
///
/// let layer = RateLimitLayer::new(RateLimitConfig::per_second(100.0))
///     .unwrap()
///     .keyed_by(|_: &HeaderMap, ext: &Extensions| ext.get::<PeerName>().map(|p| p.0.clone()));
/// # let _ = layer;
/// ```
pub trait KeyExtractor {
    /// The key; kept in the limit's map while its bucket refills.
    type Key: Hash + Eq + Clone;

    /// The key of a request, or `None` for the shared "no key" bucket.
    fn extract(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<Self::Key>;
}

/// One bucket for all requests.
#[derive(Clone, Copy, Debug, Default)]
pub struct Global;

impl KeyExtractor for Global {
    type Key = ();

    fn extract(&self, _: &HeaderMap, _: &Extensions) -> Option<()> {
        None
    }
}

/// One bucket per value of a request header (an API key, a tenant id, `x-forwarded-for` behind a
/// trusted proxy). Values are compared as bytes; at most [`max_keys`] are tracked.
///
/// [`max_keys`]: super::RateLimitConfig::max_keys
#[derive(Clone, Debug)]
pub struct HeaderKey(pub HeaderName);

impl KeyExtractor for HeaderKey {
    type Key = HeaderValue;

    fn extract(&self, headers: &HeaderMap, _: &Extensions) -> Option<HeaderValue> {
        headers.get(&self.0).cloned()
    }
}

/// One bucket per client IP address, from the [`ConnectionInfo`] mesh-core's server puts in every
/// request (the TCP peer: behind a proxy, the proxy's address).
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerIp;

impl KeyExtractor for PeerIp {
    type Key = IpAddr;

    fn extract(&self, _: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        extensions
            .get::<ConnectionInfo>()
            .map(|info| info.peer_addr().ip())
    }
}

impl<F, K> KeyExtractor for F
where
    F: Fn(&HeaderMap, &Extensions) -> Option<K>,
    K: Hash + Eq + Clone,
{
    type Key = K;

    fn extract(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<K> {
        self(headers, extensions)
    }
}
