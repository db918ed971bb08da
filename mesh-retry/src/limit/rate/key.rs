//! [`KeyExtractor`]: which bucket a request draws from.

use std::hash::Hash;
use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue};
use http::{Extensions, HeaderMap};
use mesh_core::PeerIdentity;
use mesh_core::server::ConnectionInfo;

/// Picks the rate-limit key of a request from its headers and extensions.
///
/// Requests for which it returns `None` all share one bucket, so leaving out a header does not
/// escape the limit. Implemented by [`Global`], [`HeaderKey`], [`PeerIp`], [`PeerIdentityKey`],
/// and by closures `Fn(&HeaderMap, &Extensions) -> Option<K>` — for example to key on a tenant an
/// outer layer resolved and put in the extensions:
///
/// ```
/// use http::{Extensions, HeaderMap};
/// use mesh_retry::limit::{RateLimitConfig, RateLimitLayer};
///
/// #[derive(Clone)]
/// struct Tenant(u32); // put in the extensions by an authentication layer
///
/// let layer = RateLimitLayer::new(RateLimitConfig::per_second(100.0))
///     .unwrap()
///     .keyed_by(|_: &HeaderMap, ext: &Extensions| ext.get::<Tenant>().map(|t| t.0));
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

/// One bucket per verified peer: the [`PeerIdentity`] (a SPIFFE ID) that mesh-tls's acceptor puts
/// in the extensions of every request on an mTLS connection. Requests without one (plaintext
/// connections) all share the "no key" bucket, so an unauthenticated client cannot escape the
/// limit by not presenting a certificate. Keys are one reference count to clone; at most
/// [`max_keys`] are tracked.
///
/// ```
/// use http::{Request, Response};
/// use mesh_core::error::RateLimited;
/// use mesh_core::{Identity, PeerIdentity};
/// use mesh_retry::limit::rate::PeerIdentityKey;
/// use mesh_retry::limit::{RateLimitConfig, RateLimitLayer};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let layer = RateLimitLayer::new(RateLimitConfig::per_second(1.0).burst(1))
///     .unwrap()
///     .keyed_by(PeerIdentityKey);
/// let svc = layer.layer(service_fn(|_req: Request<()>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(()))
/// }));
/// // What mesh-tls's acceptor does after the mTLS handshake.
/// let from = |id: &str| {
///     let mut req = Request::new(());
///     req.extensions_mut().insert(PeerIdentity::new(Identity::new(id).unwrap()));
///     req
/// };
/// svc.clone().oneshot(from("spiffe://prod.example/sa/web")).await.unwrap();
/// let err = svc.clone().oneshot(from("spiffe://prod.example/sa/web")).await.unwrap_err();
/// assert!(err.is::<RateLimited>());
/// // Another peer has its own bucket.
/// svc.clone().oneshot(from("spiffe://prod.example/sa/batch")).await.unwrap();
/// # }
/// ```
///
/// [`max_keys`]: super::RateLimitConfig::max_keys
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerIdentityKey;

impl KeyExtractor for PeerIdentityKey {
    type Key = PeerIdentity;

    fn extract(&self, _: &HeaderMap, extensions: &Extensions) -> Option<PeerIdentity> {
        extensions.get::<PeerIdentity>().cloned()
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
