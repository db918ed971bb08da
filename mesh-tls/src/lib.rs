#![doc = include_str!("../README.md")]
// Feature-gated items carry their feature on docs.rs (`--cfg docsrs`, see Cargo.toml).
#![cfg_attr(docsrs, feature(doc_cfg))]

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
