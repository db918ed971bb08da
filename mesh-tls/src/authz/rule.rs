//! [`AuthzRule`]: what one allow or deny rule matches.

use http::{Method, Request};
use mesh_core::proxy::{request_host, same_host};

use crate::{Authorizer, SpiffeId};

/// Which peers a rule is about.
#[derive(Clone, Debug)]
enum Peers {
    /// Authenticated peers the authorizer accepts.
    Authenticated(Authorizer),
    /// Only peers without a verified identity (plaintext connections).
    Unauthenticated,
    /// Every peer, authenticated or not.
    Anyone,
}

/// One rule of an [`AuthzPolicy`](super::AuthzPolicy): a set of peers, and optionally methods, a
/// path prefix and hosts. A request matches when every part given matches.
///
/// Unauthenticated (plaintext) peers only match rules that say so ([`unauthenticated`](Self::unauthenticated)
/// or [`anyone`](Self::anyone)); a rule about identities never matches a peer without one.
///
/// ```
/// use http::Method;
/// use mesh_tls::authz::AuthzRule;
/// use mesh_tls::Authorizer;
///
/// // Reads of /orders by the shop namespace.
/// let rule = AuthzRule::peers(Authorizer::path_prefix("prod.example".parse()?, "/ns/shop"))
///     .methods([Method::GET, Method::HEAD])
///     .path_prefix("/orders");
/// # let _ = rule;
/// # Ok::<(), mesh_tls::SpiffeIdError>(())
/// ```
#[derive(Clone, Debug)]
pub struct AuthzRule {
    peers: Peers,
    methods: Vec<Method>,
    path_prefix: Option<String>,
    hosts: Vec<String>,
}

impl AuthzRule {
    /// Matches authenticated peers that `authorizer` accepts.
    pub fn peers(authorizer: Authorizer) -> Self {
        Self::new(Peers::Authenticated(authorizer))
    }

    /// Matches every authenticated peer.
    pub fn any_authenticated() -> Self {
        Self::peers(Authorizer::any_trusted())
    }

    /// Matches only unauthenticated (plaintext) peers.
    pub fn unauthenticated() -> Self {
        Self::new(Peers::Unauthenticated)
    }

    /// Matches every peer, authenticated or not.
    pub fn anyone() -> Self {
        Self::new(Peers::Anyone)
    }

    fn new(peers: Peers) -> Self {
        Self {
            peers,
            methods: Vec::new(),
            path_prefix: None,
            hosts: Vec::new(),
        }
    }

    /// Only these methods (default: any).
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// Only paths under `prefix`, by whole segments: `/admin` matches `/admin` and `/admin/users`,
    /// not `/administrator` (default: any path). Rules see the normalised path (see
    /// [`Authz`](super::Authz)), so `/x/../admin`, `//admin` and `/%61dmin` are all under `/admin`;
    /// write prefixes in normal form (no `.`/`..` segments, no `//`, unreserved characters
    /// unescaped).
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let prefix = prefix.strip_suffix('/').unwrap_or(&prefix).to_owned();
        self.path_prefix = Some(prefix);
        self
    }

    /// Only requests for one of these hosts, compared without port, case or a trailing dot
    /// (`Secret.Example.` is `secret.example`; default: any host). The host is the request's one
    /// host, which [`Authz`](super::Authz) has checked is unambiguous before any rule is read.
    pub fn hosts<S: Into<String>>(mut self, hosts: impl IntoIterator<Item = S>) -> Self {
        self.hosts = hosts
            .into_iter()
            .map(|host| host.into().to_ascii_lowercase())
            .collect();
        self
    }

    /// Whether the rule matches a request from `peer` (`None`: unauthenticated).
    pub(crate) fn matches<B>(&self, peer: Option<&SpiffeId>, request: &Request<B>) -> bool {
        let peer_ok = match (&self.peers, peer) {
            (Peers::Anyone, _) => true,
            (Peers::Unauthenticated, peer) => peer.is_none(),
            (Peers::Authenticated(authorizer), Some(id)) => authorizer.authorize(id),
            (Peers::Authenticated(_), None) => false,
        };
        peer_ok
            && (self.methods.is_empty() || self.methods.contains(request.method()))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| path_under(request.uri().path(), prefix))
            && (self.hosts.is_empty()
                || request_host(request)
                    .is_some_and(|host| self.hosts.iter().any(|h| same_host(h, host))))
    }
}

fn path_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}
