//! [`SvidVerifier`]: the checks both TLS sides share.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::leaf::{Role, check_leaf};
use super::{Authorizer, SvidError, chain};
use crate::rotation::IdentityWatch;
use crate::{SpiffeId, TrustBundleSet};

/// Verifies a peer's X.509-SVID: the leaf rules, the chain to the bundle of the leaf's own trust
/// domain, then the [`Authorizer`].
///
/// The order is fixed and each step has its own [`SvidError`]:
///
/// 1. exactly one URI SAN, a valid SPIFFE ID;
/// 2. leaf not a CA; key usage present, with `digitalSignature` and without `keyCertSign`/`cRLSign`;
///    extended key usage, when present, allows the peer's role (`clientAuth` / `serverAuth`);
/// 3. a bundle exists for the ID's trust domain, and the chain verifies against it alone (dates,
///    signatures with the provider's algorithms, CA constraints) — never against other domains' roots;
/// 4. the authorizer accepts the ID.
///
/// [`SpiffeClientVerifier`](super::SpiffeClientVerifier) and
/// [`SpiffeServerVerifier`](super::SpiffeServerVerifier) plug it into rustls. Cloning shares the
/// bundles and the authorizer.
#[derive(Clone)]
pub struct SvidVerifier {
    bundles: Bundles,
    authorizer: Authorizer,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SvidVerifier {
    /// A verifier trusting `bundles`, accepting every trusted ID, with the signature algorithms of
    /// `provider`.
    pub fn new(bundles: Arc<TrustBundleSet>, provider: &CryptoProvider) -> Self {
        Self::with_bundles(Bundles::Fixed(bundles), provider)
    }

    /// A verifier trusting the current bundles of `source`, whichever they are when a peer is
    /// verified.
    pub fn watching(source: IdentityWatch, provider: &CryptoProvider) -> Self {
        Self::with_bundles(Bundles::Watched(source), provider)
    }

    fn with_bundles(bundles: Bundles, provider: &CryptoProvider) -> Self {
        Self {
            bundles,
            authorizer: Authorizer::any_trusted(),
            algorithms: provider.signature_verification_algorithms,
        }
    }

    /// Replaces the authorizer.
    pub fn authorizer(mut self, authorizer: Authorizer) -> Self {
        self.authorizer = authorizer;
        self
    }

    /// The trust bundles in force now.
    pub fn bundles(&self) -> Arc<TrustBundleSet> {
        match &self.bundles {
            Bundles::Fixed(bundles) => bundles.clone(),
            Bundles::Watched(source) => source.current().bundles().clone(),
        }
    }

    /// Verifies the certificate chain a **client** presented; returns its ID.
    pub fn verify_client(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<SpiffeId, SvidError> {
        self.verify(end_entity, intermediates, now, Role::Client)
    }

    /// Verifies the certificate chain a **server** presented; returns its ID.
    pub fn verify_server(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<SpiffeId, SvidError> {
        self.verify(end_entity, intermediates, now, Role::Server)
    }

    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        role: Role,
    ) -> Result<SpiffeId, SvidError> {
        let leaf = check_leaf(end_entity, role)?;
        chain::verify_chain(
            &self.bundles(),
            &leaf,
            end_entity,
            intermediates,
            now,
            &self.algorithms,
            role,
        )?;
        if !self.authorizer.authorize(&leaf.id) {
            return Err(SvidError::NotAuthorized { id: leaf.id });
        }
        Ok(leaf.id)
    }

    pub(crate) fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.algorithms
    }
}

/// Where the bundles come from.
#[derive(Clone, Debug)]
enum Bundles {
    Fixed(Arc<TrustBundleSet>),
    Watched(IdentityWatch),
}

impl fmt::Debug for SvidVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SvidVerifier")
            .field("bundles", &self.bundles)
            .field("authorizer", &self.authorizer)
            .finish_non_exhaustive()
    }
}
