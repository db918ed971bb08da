//! Chain verification against the bundle of the leaf's own trust domain.

use std::time::{Duration, SystemTime};

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use super::SvidError;
use super::leaf::{CheckedLeaf, Role};
use crate::TrustBundleSet;

/// Verifies that `end_entity` chains (through `intermediates`) to a root of the trust domain of
/// `leaf.id`, is valid at `now` and allows `role`'s extended key usage.
///
/// No server-name check: the identity is the SPIFFE ID, checked by the caller.
pub(crate) fn verify_chain(
    bundles: &TrustBundleSet,
    leaf: &CheckedLeaf,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    algorithms: &WebPkiSupportedAlgorithms,
    role: Role,
) -> Result<(), SvidError> {
    let trust_domain = leaf.id.trust_domain();
    let bundle = bundles
        .get(trust_domain)
        .ok_or_else(|| SvidError::UnknownTrustDomain {
            trust_domain: trust_domain.clone(),
        })?;
    let cert = EndEntityCert::try_from(end_entity).map_err(|error| SvidError::Malformed {
        reason: error.to_string(),
    })?;
    let verify = |anchors: &[TrustAnchor<'_>]| {
        let usage = match role {
            Role::Client => KeyUsage::client_auth(),
            Role::Server => KeyUsage::server_auth(),
        };
        cert.verify_for_usage(
            algorithms.all,
            anchors,
            intermediates,
            now,
            usage,
            None,
            None,
        )
        .map(drop)
    };
    match verify(bundle.anchors()) {
        Ok(()) => Ok(()),
        // No root of the domain signed the chain: either none has the issuer's name, or one has
        // the name but not the key (an impostor CA named like the real one).
        Err(webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey) => {
            // Off the hot path: explain the failure. A chain that another trust domain's roots
            // accept is a federated CA overreaching; a self-issued leaf is a self-signed one.
            let other = bundles
                .iter()
                .filter(|(other, _)| *other != trust_domain)
                .find(|(_, bundle)| verify(bundle.anchors()).is_ok());
            Err(match other {
                Some((signed_by, _)) => SvidError::WrongTrustDomain {
                    id: leaf.id.clone(),
                    signed_by: signed_by.clone(),
                },
                None if leaf.self_issued && intermediates.is_empty() => SvidError::SelfSigned,
                None => SvidError::UnknownIssuer {
                    trust_domain: trust_domain.clone(),
                },
            })
        }
        Err(webpki::Error::CertExpired { not_after, .. }) => Err(SvidError::Expired {
            not_after: system_time(not_after),
        }),
        Err(webpki::Error::CertNotValidYet { not_before, .. }) => Err(SvidError::NotYetValid {
            not_before: system_time(not_before),
        }),
        Err(webpki::Error::CaUsedAsEndEntity) => Err(SvidError::LeafIsCa),
        Err(webpki::Error::RequiredEkuNotFoundContext(_)) => {
            Err(SvidError::MissingExtendedKeyUsage {
                purpose: match role {
                    Role::Client => "clientAuth",
                    Role::Server => "serverAuth",
                },
            })
        }
        Err(other) => Err(SvidError::InvalidChain {
            reason: other.to_string(),
        }),
    }
}

fn system_time(time: UnixTime) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(time.as_secs())
}
