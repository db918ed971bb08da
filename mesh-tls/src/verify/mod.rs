//! Verifying peers' X.509-SVIDs: [`SvidVerifier`] and its rustls adapters
//! [`SpiffeClientVerifier`] (server side) and [`SpiffeServerVerifier`] (client side), the
//! [`Authorizer`] that has the last word, and [`SvidError`].
//!
//! Stock rustls verifiers check the chain, the dates and the DNS name; a SPIFFE peer needs other
//! checks (the X.509-SVID spec): the identity is the one URI SAN, roots are picked by the trust
//! domain of that ID, and leaf certificates must not be able to sign. Every rejection is its own
//! [`SvidError`] variant.
//!
//! ```
//! use std::sync::Arc;
//! use mesh_tls::test_ca::TestCa;
//! use mesh_tls::{SvidError, SvidVerifier, TrustBundleSet};
//! use rustls_pki_types::UnixTime;
//!
//! let ca = TestCa::new("prod.example");
//! let bundles = Arc::new(TrustBundleSet::new().with(ca.trust_domain().clone(), ca.roots())?);
//! let verifier = SvidVerifier::new(bundles, &mesh_tls::crypto_provider());
//!
//! let web = ca.issue("/ns/shop/sa/web");
//! let id = verifier.verify_client(&web.chain()[0], &web.chain()[1..], UnixTime::now())?;
//! assert_eq!(id.as_str(), "spiffe://prod.example/ns/shop/sa/web");
//!
//! let stranger = TestCa::new("prod.example").issue("/ns/shop/sa/web");
//! let refused = verifier.verify_client(&stranger.chain()[0], &[], UnixTime::now());
//! assert!(matches!(refused, Err(SvidError::UnknownIssuer { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod authorizer;
mod chain;
mod error;
pub(crate) mod leaf;
mod rustls_impls;
mod svid_verifier;

pub use authorizer::Authorizer;
pub use error::SvidError;
pub use leaf::spiffe_id_of;
pub use rustls_impls::{SpiffeClientVerifier, SpiffeServerVerifier};
pub use svid_verifier::SvidVerifier;
