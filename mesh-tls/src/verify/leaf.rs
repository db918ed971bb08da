//! The X.509-SVID rules that concern the leaf certificate alone.

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::SvidError;
use crate::SpiffeId;

/// The role the certificate's owner plays in the handshake, which decides the extended key usage
/// its certificate must allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// A TLS client: `clientAuth`.
    Client,
    /// A TLS server: `serverAuth`.
    Server,
}

impl Role {
    fn purpose(self) -> &'static str {
        match self {
            Role::Client => "clientAuth",
            Role::Server => "serverAuth",
        }
    }
}

/// What the chain check needs to know about a leaf that passed the leaf rules.
#[derive(Debug)]
pub(crate) struct CheckedLeaf {
    pub(crate) id: SpiffeId,
    /// Issuer and subject names are equal: the certificate claims to have signed itself.
    pub(crate) self_issued: bool,
}

/// The SPIFFE ID in a certificate's URI SAN, checking only that there is exactly one and that it is a
/// valid SPIFFE ID (none of the other X.509-SVID rules, and no chain).
///
/// Handy to read the ID of a peer certificate that was already verified, or of one's own SVID.
pub fn spiffe_id_of(certificate: &CertificateDer<'_>) -> Result<SpiffeId, SvidError> {
    let cert = parse(certificate)?;
    spiffe_id_in(&cert)
}

/// Applies every leaf rule of the X.509-SVID spec for a certificate presented by `role`.
pub(crate) fn check_leaf(
    certificate: &CertificateDer<'_>,
    role: Role,
) -> Result<CheckedLeaf, SvidError> {
    let cert = parse(certificate)?;
    let id = spiffe_id_in(&cert)?;

    let constraints = cert.basic_constraints().map_err(malformed)?;
    if constraints.is_some_and(|ext| ext.value.ca) {
        return Err(SvidError::LeafIsCa);
    }
    let usage = cert
        .key_usage()
        .map_err(malformed)?
        .ok_or(SvidError::MissingKeyUsage)?
        .value;
    if !usage.digital_signature() {
        return Err(SvidError::MissingDigitalSignature);
    }
    if usage.key_cert_sign() || usage.crl_sign() {
        return Err(SvidError::SigningKeyUsage);
    }
    if let Some(eku) = cert.extended_key_usage().map_err(malformed)? {
        let allowed = match role {
            Role::Client => eku.value.client_auth,
            Role::Server => eku.value.server_auth,
        };
        if !allowed {
            return Err(SvidError::MissingExtendedKeyUsage {
                purpose: role.purpose(),
            });
        }
    }
    Ok(CheckedLeaf {
        id,
        self_issued: cert.issuer().as_raw() == cert.subject().as_raw(),
    })
}

fn parse<'a>(certificate: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, SvidError> {
    match X509Certificate::from_der(certificate.as_ref()) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(SvidError::Malformed {
            reason: "trailing data after the certificate".into(),
        }),
        Err(error) => Err(malformed(error)),
    }
}

fn spiffe_id_in(cert: &X509Certificate<'_>) -> Result<SpiffeId, SvidError> {
    let san = cert.subject_alternative_name().map_err(malformed)?;
    let mut uris = san.iter().flat_map(|ext| {
        ext.value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some(*uri),
                _ => None,
            })
    });
    let uri = uris.next().ok_or(SvidError::NoUriSan)?;
    let extra = uris.count();
    if extra > 0 {
        return Err(SvidError::MultipleUriSans { count: extra + 1 });
    }
    let is_spiffe = uri
        .get(..9)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("spiffe://"));
    if !is_spiffe {
        return Err(SvidError::NotSpiffeUri { uri: uri.into() });
    }
    SpiffeId::new(uri).map_err(|source| SvidError::InvalidSpiffeId {
        uri: uri.into(),
        source,
    })
}

fn malformed(error: impl std::fmt::Display) -> SvidError {
    SvidError::Malformed {
        reason: error.to_string(),
    }
}

/// The validity period of a certificate, as `(not_before, not_after)`.
pub(crate) fn validity(
    certificate: &CertificateDer<'_>,
) -> Result<(std::time::SystemTime, std::time::SystemTime), SvidError> {
    let cert = parse(certificate)?;
    // Checked: a date the platform's `SystemTime` cannot hold (before 1601 on Windows) is a
    // malformed certificate, not a panic.
    let at = |time: x509_parser::time::ASN1Time| {
        let secs = time.timestamp();
        let offset = std::time::Duration::from_secs(secs.unsigned_abs());
        match secs >= 0 {
            true => std::time::SystemTime::UNIX_EPOCH.checked_add(offset),
            false => std::time::SystemTime::UNIX_EPOCH.checked_sub(offset),
        }
        .ok_or_else(|| malformed("validity date out of range"))
    };
    let validity = cert.validity();
    Ok((at(validity.not_before)?, at(validity.not_after)?))
}
