//! SPIFFE mutual-TLS identity for the mesh-* stack, on rustls.
//!
//! **Status: skeleton.** What exists today is the choice of crypto provider; SPIFFE IDs, trust bundles
//! per trust domain, SVID verifiers, connect/accept and file-based rotation follow.
//!
//! ```text
//! client: mesh_core::client connector → TLS connect (ALPN h2/http1.1, TLS 1.3)
//!         → verify the server SVID against the bundle of its trust domain → expected Endpoint identity
//! server: mesh_core::server acceptor → TLS accept → verify the client SVID → PeerIdentity in extensions
//! ```
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
