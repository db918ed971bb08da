//! [`TrustBundleSet`]: the root certificates of each trusted trust domain, kept apart.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor};

use crate::TrustDomain;

/// The trust bundles of every trust domain this workload trusts, one per domain, **never merged**.
///
/// A peer's certificate is chained only to the bundle of the trust domain named in its own SPIFFE
/// ID. With one merged root store (what a plain TLS stack offers), any federated CA could issue
/// certificates for the IDs of every other trust domain; here a root of `partner.example` can only
/// vouch for `spiffe://partner.example/...`.
///
/// Roots are parsed into trust anchors once, when they are added. The set is immutable once shared
/// (verifiers hold it in an `Arc`); cloning it clones the map, sharing each bundle.
///
/// ```
/// use mesh_tls::{TrustBundleSet, TrustDomain};
/// # let pem = mesh_tls::test_ca::TestCa::new("prod.example").root_pem();
///
/// let mut bundles = TrustBundleSet::new();
/// bundles.insert_pem(TrustDomain::new("prod.example")?, pem.as_bytes())?;
/// assert_eq!(bundles.len(), 1);
/// assert!(bundles.get(&"prod.example".parse()?).is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct TrustBundleSet {
    bundles: HashMap<TrustDomain, TrustBundle>,
}

/// The roots of one trust domain, as DER and as parsed trust anchors. Cloning shares both.
#[derive(Clone)]
pub struct TrustBundle {
    roots: Arc<[CertificateDer<'static>]>,
    anchors: Arc<[TrustAnchor<'static>]>,
}

/// Why a trust bundle was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle of the named trust domain has no certificate.
    #[error("the trust bundle of {trust_domain} is empty")]
    Empty {
        /// The trust domain.
        trust_domain: TrustDomain,
    },
    /// A root certificate could not be parsed as a trust anchor.
    #[error(
        "root #{index} of the trust bundle of {trust_domain} is not a usable certificate: {reason}"
    )]
    BadRoot {
        /// The trust domain.
        trust_domain: TrustDomain,
        /// The position of the certificate in the bundle, from 0.
        index: usize,
        /// What the parser said.
        reason: String,
    },
    /// The PEM text could not be read.
    #[error("the trust bundle of {trust_domain} is not valid PEM: {reason}")]
    Pem {
        /// The trust domain.
        trust_domain: TrustDomain,
        /// What the PEM reader said.
        reason: String,
    },
}

impl TrustBundleSet {
    /// An empty set: nothing is trusted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the roots of `trust_domain`, replacing any previous bundle of that domain.
    pub fn insert(
        &mut self,
        trust_domain: TrustDomain,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<(), BundleError> {
        let bundle = TrustBundle::new(&trust_domain, roots)?;
        self.bundles.insert(trust_domain, bundle);
        Ok(())
    }

    /// Sets the roots of `trust_domain` from PEM text (one or more `CERTIFICATE` blocks).
    pub fn insert_pem(&mut self, trust_domain: TrustDomain, pem: &[u8]) -> Result<(), BundleError> {
        let roots = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| BundleError::Pem {
                trust_domain: trust_domain.clone(),
                reason: error.to_string(),
            })?;
        self.insert(trust_domain, roots)
    }

    /// Builder form of [`insert`](Self::insert).
    pub fn with(
        mut self,
        trust_domain: TrustDomain,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, BundleError> {
        self.insert(trust_domain, roots)?;
        Ok(self)
    }

    /// Removes the bundle of `trust_domain`; its IDs are no longer trusted.
    pub fn remove(&mut self, trust_domain: &TrustDomain) -> Option<TrustBundle> {
        self.bundles.remove(trust_domain)
    }

    /// The bundle of `trust_domain`, if trusted.
    pub fn get(&self, trust_domain: &TrustDomain) -> Option<&TrustBundle> {
        self.bundles.get(trust_domain)
    }

    /// Every trusted trust domain with its bundle, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&TrustDomain, &TrustBundle)> {
        self.bundles.iter()
    }

    /// The number of trusted trust domains.
    pub fn len(&self) -> usize {
        self.bundles.len()
    }

    /// Whether no trust domain is trusted.
    pub fn is_empty(&self) -> bool {
        self.bundles.is_empty()
    }
}

impl TrustBundle {
    fn new(
        trust_domain: &TrustDomain,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, BundleError> {
        if roots.is_empty() {
            return Err(BundleError::Empty {
                trust_domain: trust_domain.clone(),
            });
        }
        let anchors = roots
            .iter()
            .enumerate()
            .map(|(index, root)| {
                webpki::anchor_from_trusted_cert(root)
                    .map(|anchor| anchor.to_owned())
                    .map_err(|error| BundleError::BadRoot {
                        trust_domain: trust_domain.clone(),
                        index,
                        reason: error.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            roots: roots.into(),
            anchors: anchors.into(),
        })
    }

    /// The root certificates, as given.
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    /// The roots parsed as trust anchors, for chain verification.
    pub fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }
}

impl fmt::Debug for TrustBundleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut domains: Vec<_> = self.bundles.iter().collect();
        domains.sort_by(|a, b| a.0.cmp(b.0));
        f.debug_map()
            .entries(
                domains
                    .into_iter()
                    .map(|(td, b)| (td.as_str(), b.roots.len())),
            )
            .finish()
    }
}

impl fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustBundle")
            .field("roots", &self.roots.len())
            .finish()
    }
}
