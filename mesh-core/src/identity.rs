//! [`PeerIdentity`]: who is on the other end of a connection, as proven by mTLS.
//!
//! The TLS acceptor of `mesh-tls` verifies the client's X.509-SVID and puts a `PeerIdentity` in the
//! per-connection extensions that [`server::Acceptor`](crate::server::Acceptor) returns, so every request
//! on that connection carries it. Layers that only need to *read* the identity (authorization in
//! `mesh-tls`, span attributes and access logs in `mesh-observe`, per-peer rate limits in `mesh-retry`)
//! depend on this type rather than on each other. Its absence means the peer was not authenticated
//! (a plaintext connection).
//!
//! ```
//! use http::Request;
//! use mesh_core::{Identity, PeerIdentity};
//!
//! let mut req = Request::new(());
//! let id = Identity::new("spiffe://prod.example/ns/shop/sa/web").unwrap();
//! req.extensions_mut().insert(PeerIdentity::new(id));
//!
//! let peer = req.extensions().get::<PeerIdentity>().map(PeerIdentity::as_str);
//! assert_eq!(peer, Some("spiffe://prod.example/ns/shop/sa/web"));
//! ```

use std::fmt;

use crate::endpoint::Identity;

/// The verified identity of the peer of a connection; a request extension.
///
/// Only a component that has verified the peer (the mTLS handshake) should insert it. Cheap to clone:
/// one reference count.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerIdentity(Identity);

impl PeerIdentity {
    /// Wraps a verified identity.
    pub fn new(identity: Identity) -> Self {
        Self(identity)
    }

    /// The identity.
    pub fn identity(&self) -> &Identity {
        &self.0
    }

    /// The identity as text (a SPIFFE ID).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
