//! SPIFFE mutual-TLS identity for the mesh-* stack, on rustls.
//!
//! Identity is what makes a mesh a mesh: every connection proves who is on each end with an
//! X.509-SVID, and the SPIFFE ID in it (not a DNS name) is what the other side checks. This crate
//! does that strictly, without a SPIRE agent:
//!
//! - [`SpiffeId`] and [`TrustDomain`], validated and normalised per the SPIFFE-ID spec
//!   (module [`id`]);
//! - [`TrustBundleSet`]: roots **per trust domain**, never merged, so a federated CA can only vouch
//!   for its own domain's IDs;
//! - [`X509Svid`]: this workload's certificate chain and key;
//! - [`SvidVerifier`] and its rustls adapters [`SpiffeClientVerifier`] / [`SpiffeServerVerifier`]:
//!   exactly one URI SAN, leaf not a CA, key usage and extended key usage rules, chain to the bundle of
//!   the ID's own trust domain, then an [`Authorizer`]; each rejection its own [`SvidError`];
//! - [`TlsConnector`] (a connector for [`mesh_core::client::HttpClient`] that checks the endpoint's
//!   expected SPIFFE ID) and [`TlsAcceptor`] (an acceptor for [`mesh_core::server::Server`] that puts
//!   the client's [`PeerIdentity`](mesh_core::PeerIdentity) on every request);
//! - [`rotation`]: SVID and bundles from files (or any [`rotation::IdentitySource`]), swapped
//!   without a restart and without dropping connections (unless the acceptor is asked to re-check
//!   live connections when the bundles change); bad files refused, the last good kept;
//! - [`authz`]: per-request authorization on the peer identity, method, path and host (deny, then
//!   allow, then default; dry run; `403` through mesh-core's error layer);
//! - the `test_ca` module (feature `test-ca`): CAs, SVIDs and deliberately broken certificates for tests.
//!
//! ```text
//! client: mesh_core::client connector → TLS connect (ALPN h2/http1.1, TLS 1.3)
//!         → verify the server SVID against the bundle of its trust domain → expected Endpoint identity
//! server: mesh_core::server acceptor → TLS accept → verify the client SVID → PeerIdentity in extensions
//! ```
//!
//! Session resumption is off on both sides, so every connection is verified in full against the
//! current bundles and the endpoint's expected ID.
//!
//! ## Crypto provider
//!
//! rustls needs a [`CryptoProvider`]. Feature `aws-lc-rs` (default)
//! selects aws-lc-rs, feature `ring` selects *ring*; with both, aws-lc-rs wins. Configurations are built
//! with an explicit provider from [`crypto_provider`], never from a process-wide default, so both
//! features can be compiled in together.
//!
//! ```
//! let provider = mesh_tls::crypto_provider();
//! assert!(!provider.cipher_suites.is_empty());
//! ```

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub mod authz;
mod bundle;
pub mod id;
pub mod rotation;
mod svid;
#[cfg(feature = "test-ca")]
pub mod test_ca;
pub mod transport;
pub mod verify;

pub use bundle::{BundleError, TrustBundle, TrustBundleSet};
pub use id::{SpiffeId, SpiffeIdError, TrustDomain};
pub use svid::{SvidLoadError, X509Svid};
pub use transport::{HandshakeError, TlsAcceptor, TlsConnector, failure_detail};
pub use verify::{
    Authorizer, SpiffeClientVerifier, SpiffeServerVerifier, SvidError, SvidVerifier, spiffe_id_of,
};

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!("mesh-tls needs a crypto provider: enable feature `aws-lc-rs` (default) or `ring`");

/// The crypto provider selected by this crate's features.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}
