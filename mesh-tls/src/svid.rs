//! [`X509Svid`]: this workload's own identity, a certificate chain and its private key.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::verify::spiffe_id_of;
use crate::{SpiffeId, SvidError};

/// This workload's X.509-SVID: the certificate chain it presents (leaf first) and the leaf's private
/// key, loaded into the crypto provider once.
///
/// Construction checks that the chain is not empty, that the leaf carries exactly one valid SPIFFE
/// ID, and that the key matches the leaf. Cloning is one reference count; the key never appears in
/// `Debug` output.
#[derive(Clone)]
pub struct X509Svid {
    id: SpiffeId,
    certified: Arc<CertifiedKey>,
}

/// Why an [`X509Svid`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SvidLoadError {
    /// The certificate chain is empty.
    #[error("the certificate chain is empty")]
    EmptyChain,
    /// The PEM text holds no private key, or could not be read.
    #[error("cannot read the {what} PEM: {reason}")]
    Pem {
        /// `"certificate chain"` or `"private key"`.
        what: &'static str,
        /// What the PEM reader said.
        reason: String,
    },
    /// The leaf does not carry a usable SPIFFE ID.
    #[error("the leaf certificate has no usable SPIFFE ID: {0}")]
    Id(#[source] SvidError),
    /// The key cannot be loaded, or does not match the leaf's public key.
    #[error("the private key is unusable or does not match the leaf certificate: {0}")]
    Key(#[source] rustls::Error),
}

impl X509Svid {
    /// Builds an SVID from a chain (leaf first) and the leaf's private key.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        provider: &CryptoProvider,
    ) -> Result<Self, SvidLoadError> {
        let leaf = chain.first().ok_or(SvidLoadError::EmptyChain)?;
        let id = spiffe_id_of(leaf).map_err(SvidLoadError::Id)?;
        let certified = CertifiedKey::from_der(chain, key, provider).map_err(SvidLoadError::Key)?;
        Ok(Self {
            id,
            certified: Arc::new(certified),
        })
    }

    /// Builds an SVID from PEM text: `chain` holds `CERTIFICATE` blocks (leaf first), `key` one
    /// private key (PKCS#8, SEC1 or PKCS#1).
    pub fn from_pem(
        chain: &[u8],
        key: &[u8],
        provider: &CryptoProvider,
    ) -> Result<Self, SvidLoadError> {
        let chain = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| SvidLoadError::Pem {
                what: "certificate chain",
                reason: error.to_string(),
            })?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|error| SvidLoadError::Pem {
            what: "private key",
            reason: error.to_string(),
        })?;
        Self::new(chain, key, provider)
    }

    /// The SPIFFE ID of the leaf.
    pub fn id(&self) -> &SpiffeId {
        &self.id
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.certified.cert
    }

    /// The chain and loaded key, as rustls's certificate resolvers use them.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.certified
    }
}

impl fmt::Debug for X509Svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Svid")
            .field("id", &self.id)
            .field("chain_len", &self.certified.cert.len())
            .finish_non_exhaustive()
    }
}
