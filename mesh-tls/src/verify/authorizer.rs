//! [`Authorizer`]: which verified SPIFFE IDs a verifier accepts.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use crate::{SpiffeId, TrustDomain};

/// Decides whether a peer whose SVID verified is allowed to complete the handshake.
///
/// It runs last, after the chain and every X.509-SVID rule passed, so it only ever sees IDs that the
/// bundle of their own trust domain vouches for. It is the coarse, per-connection gate; per-request
/// rules (method, path, host) belong in an HTTP authorization layer.
///
/// Cloning is cheap (reference counts).
///
/// ```
/// use mesh_tls::{Authorizer, SpiffeId};
///
/// let shop = Authorizer::path_prefix("prod.example".parse()?, "/ns/shop");
/// let id = |s: &str| s.parse::<SpiffeId>();
/// assert!(shop.authorize(&id("spiffe://prod.example/ns/shop/sa/web")?));
/// assert!(!shop.authorize(&id("spiffe://prod.example/ns/shopping/sa/web")?));
/// assert!(!shop.authorize(&id("spiffe://dev.example/ns/shop/sa/web")?));
///
/// let either = Authorizer::any_of([shop, Authorizer::ids([id("spiffe://ops.example/admin")?])]);
/// assert!(either.authorize(&id("spiffe://ops.example/admin")?));
/// # Ok::<(), mesh_tls::SpiffeIdError>(())
/// ```
#[derive(Clone)]
pub struct Authorizer(Rule);

#[derive(Clone)]
enum Rule {
    AnyTrusted,
    Ids(Arc<HashSet<SpiffeId>>),
    TrustDomains(Arc<HashSet<TrustDomain>>),
    PathPrefix {
        trust_domain: TrustDomain,
        prefix: Arc<str>,
    },
    AnyOf(Arc<[Authorizer]>),
    Custom(Arc<dyn Fn(&SpiffeId) -> bool + Send + Sync>),
}

impl Authorizer {
    /// Accepts every ID of every trust domain in the bundle set. The default.
    pub fn any_trusted() -> Self {
        Self(Rule::AnyTrusted)
    }

    /// Accepts exactly these IDs.
    pub fn ids(ids: impl IntoIterator<Item = SpiffeId>) -> Self {
        Self(Rule::Ids(Arc::new(ids.into_iter().collect())))
    }

    /// Accepts every ID of these trust domains.
    pub fn trust_domains(domains: impl IntoIterator<Item = TrustDomain>) -> Self {
        Self(Rule::TrustDomains(Arc::new(domains.into_iter().collect())))
    }

    /// Accepts IDs of `trust_domain` whose path starts with `prefix` by whole segments
    /// (see [`SpiffeId::path_starts_with`]).
    pub fn path_prefix(trust_domain: TrustDomain, prefix: &str) -> Self {
        Self(Rule::PathPrefix {
            trust_domain,
            prefix: prefix.into(),
        })
    }

    /// Accepts an ID that any of `authorizers` accepts (none: accepts nothing).
    pub fn any_of(authorizers: impl IntoIterator<Item = Authorizer>) -> Self {
        Self(Rule::AnyOf(authorizers.into_iter().collect()))
    }

    /// Accepts an ID when `decide` returns `true`. It runs inside the TLS handshake: keep it quick
    /// and never block.
    pub fn from_fn(decide: impl Fn(&SpiffeId) -> bool + Send + Sync + 'static) -> Self {
        Self(Rule::Custom(Arc::new(decide)))
    }

    /// Whether `id` is accepted.
    pub fn authorize(&self, id: &SpiffeId) -> bool {
        match &self.0 {
            Rule::AnyTrusted => true,
            Rule::Ids(ids) => ids.contains(id),
            Rule::TrustDomains(domains) => domains.contains(id.trust_domain()),
            Rule::PathPrefix {
                trust_domain,
                prefix,
            } => id.trust_domain() == trust_domain && id.path_starts_with(prefix),
            Rule::AnyOf(all) => all.iter().any(|a| a.authorize(id)),
            Rule::Custom(decide) => decide(id),
        }
    }
}

impl Default for Authorizer {
    fn default() -> Self {
        Self::any_trusted()
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Rule::AnyTrusted => f.write_str("AnyTrusted"),
            Rule::Ids(ids) => f.debug_tuple("Ids").field(ids).finish(),
            Rule::TrustDomains(domains) => f.debug_tuple("TrustDomains").field(domains).finish(),
            Rule::PathPrefix {
                trust_domain,
                prefix,
            } => f
                .debug_struct("PathPrefix")
                .field("trust_domain", trust_domain)
                .field("prefix", prefix)
                .finish(),
            Rule::AnyOf(all) => f.debug_tuple("AnyOf").field(all).finish(),
            Rule::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}
