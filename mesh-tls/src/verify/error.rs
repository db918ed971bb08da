//! [`SvidError`]: why a peer's X.509-SVID was refused.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::SystemTime;

use crate::{SpiffeId, SpiffeIdError, TrustDomain};

/// Why a peer's X.509-SVID was refused: one variant per rule, so a test, a log line or a metric can
/// tell the cases apart.
///
/// The verifiers hand it to rustls as
/// `rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc<SvidError>)))`; rustls
/// then sends the matching alert to the peer. [`SvidError::find`] digs it back out of whatever the
/// handshake failed with (an `io::Error` from tokio-rustls, a [`rustls::Error`], a
/// [`mesh_core::error::ConnectError`] …).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SvidError {
    /// The leaf certificate is not valid X.509 DER.
    #[error("the certificate cannot be parsed: {reason}")]
    Malformed {
        /// What the parser said.
        reason: String,
    },
    /// The leaf has no URI subject alternative name.
    #[error("the certificate has no URI SAN, so no SPIFFE ID")]
    NoUriSan,
    /// The leaf has more than one URI SAN; an X.509-SVID has exactly one.
    #[error("the certificate has {count} URI SANs; an X.509-SVID has exactly one")]
    MultipleUriSans {
        /// How many.
        count: usize,
    },
    /// The URI SAN is not a `spiffe://` URI.
    #[error("the URI SAN {uri:?} is not a SPIFFE ID")]
    NotSpiffeUri {
        /// The URI.
        uri: String,
    },
    /// The URI SAN is a `spiffe://` URI that breaks a rule of the SPIFFE-ID spec.
    #[error("the URI SAN {uri:?} is not a valid SPIFFE ID: {source}")]
    InvalidSpiffeId {
        /// The URI.
        uri: String,
        /// The rule it breaks.
        source: SpiffeIdError,
    },
    /// The leaf is a CA certificate (`basicConstraints` `CA:true`).
    #[error("the leaf certificate is a CA certificate")]
    LeafIsCa,
    /// The leaf has no key usage extension; an X.509-SVID leaf must have one.
    #[error("the leaf certificate has no key usage extension")]
    MissingKeyUsage,
    /// The leaf's key usage lacks `digitalSignature`.
    #[error("the leaf certificate's key usage lacks digitalSignature")]
    MissingDigitalSignature,
    /// The leaf's key usage has `keyCertSign` or `cRLSign`, which only signing certificates may have.
    #[error("the leaf certificate's key usage has keyCertSign or cRLSign")]
    SigningKeyUsage,
    /// The leaf has an extended key usage extension without the purpose this side needs.
    #[error("the leaf certificate's extended key usage lacks {purpose}")]
    MissingExtendedKeyUsage {
        /// `"serverAuth"` or `"clientAuth"`.
        purpose: &'static str,
    },
    /// No bundle is configured for the trust domain of the peer's ID.
    #[error("no trust bundle for trust domain {trust_domain}")]
    UnknownTrustDomain {
        /// The peer's trust domain.
        trust_domain: TrustDomain,
    },
    /// A certificate of the chain has expired.
    #[error("the certificate expired")]
    Expired {
        /// When it stopped being valid.
        not_after: SystemTime,
    },
    /// A certificate of the chain is not valid yet.
    #[error("the certificate is not valid yet")]
    NotYetValid {
        /// When it becomes valid.
        not_before: SystemTime,
    },
    /// The leaf is self-signed: it is its own issuer and no root of its trust domain vouches for it.
    #[error("the certificate is self-signed and not trusted")]
    SelfSigned,
    /// The chain verifies against the roots of another trust domain, not those of the ID's own trust
    /// domain: a federated CA issuing IDs it has no authority over.
    #[error("{id} is signed by a root of trust domain {signed_by}, not by its own trust domain")]
    WrongTrustDomain {
        /// The peer's ID.
        id: SpiffeId,
        /// The trust domain whose roots signed it.
        signed_by: TrustDomain,
    },
    /// The chain does not lead to any root of the ID's trust domain: no root has the issuer's name,
    /// or the one that has it did not make the signature (an impostor CA with a copied name, or a
    /// tampered certificate).
    #[error("the certificate is not signed by a root of trust domain {trust_domain}")]
    UnknownIssuer {
        /// The peer's trust domain.
        trust_domain: TrustDomain,
    },
    /// The chain is invalid for another reason (bad signature, name constraints, unsupported
    /// algorithm …).
    #[error("the certificate chain is invalid: {reason}")]
    InvalidChain {
        /// What the path validation said.
        reason: String,
    },
    /// The server's ID is not the one the endpoint expects (client side).
    #[error("expected server {expected}, the certificate says {found}")]
    IdentityMismatch {
        /// The endpoint's expected ID.
        expected: SpiffeId,
        /// The ID in the server's certificate.
        found: SpiffeId,
    },
    /// The peer's ID is valid and trusted, but the authorizer does not accept it.
    #[error("{id} is not authorized")]
    NotAuthorized {
        /// The peer's ID.
        id: SpiffeId,
    },
}

impl SvidError {
    /// The variant's name (`"WrongTrustDomain"`, `"IdentityMismatch"` …): a stable label for a
    /// log field or a metric attribute, which unlike the message names no ID or certificate.
    pub fn kind(&self) -> &'static str {
        match self {
            SvidError::Malformed { .. } => "Malformed",
            SvidError::NoUriSan => "NoUriSan",
            SvidError::MultipleUriSans { .. } => "MultipleUriSans",
            SvidError::NotSpiffeUri { .. } => "NotSpiffeUri",
            SvidError::InvalidSpiffeId { .. } => "InvalidSpiffeId",
            SvidError::LeafIsCa => "LeafIsCa",
            SvidError::MissingKeyUsage => "MissingKeyUsage",
            SvidError::MissingDigitalSignature => "MissingDigitalSignature",
            SvidError::SigningKeyUsage => "SigningKeyUsage",
            SvidError::MissingExtendedKeyUsage { .. } => "MissingExtendedKeyUsage",
            SvidError::UnknownTrustDomain { .. } => "UnknownTrustDomain",
            SvidError::Expired { .. } => "Expired",
            SvidError::NotYetValid { .. } => "NotYetValid",
            SvidError::SelfSigned => "SelfSigned",
            SvidError::WrongTrustDomain { .. } => "WrongTrustDomain",
            SvidError::UnknownIssuer { .. } => "UnknownIssuer",
            SvidError::InvalidChain { .. } => "InvalidChain",
            SvidError::IdentityMismatch { .. } => "IdentityMismatch",
            SvidError::NotAuthorized { .. } => "NotAuthorized",
        }
    }

    /// Finds an `SvidError` in `error` or its causes, looking inside rustls's
    /// `CertificateError::Other` and the `io::Error`s tokio-rustls wraps handshake failures in.
    pub fn find<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a SvidError> {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(svid) = error.downcast_ref::<SvidError>() {
                return Some(svid);
            }
            if let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) =
                error.downcast_ref::<rustls::Error>()
            {
                return other.0.downcast_ref::<SvidError>();
            }
            if let Some(io) = error.downcast_ref::<std::io::Error>()
                && let Some(inner) = io.get_ref()
            {
                next = Some(inner as &(dyn StdError + 'static));
                continue;
            }
            next = error.source();
        }
        None
    }
}

impl From<SvidError> for rustls::Error {
    fn from(error: SvidError) -> Self {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(error),
        )))
    }
}
