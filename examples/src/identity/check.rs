//! The startup check of `[identity]`: every file is read and judged on its own before the
//! rotation source loads them, so that a refusal names the configuration key, the file and the
//! reason, and the binaries exit 2 as for any other configuration error.
//!
//! mesh-tls's `FileSource` checks the same things, but it sees the files as one set and reports
//! what is wrong, not which key points at the culprit; at startup the key is what the operator
//! needs. Warnings are for setups that start but are probably not what was meant.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use mesh_tls::{
    SpiffeId, SvidLoadError, SvidVerifier, TrustBundleSet, TrustDomain, X509Svid, spiffe_id_of,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::config::{ConfigError, Identity};

/// The key of one trust domain's bundle file, quoted as TOML needs it: `identity.bundles."td"`.
pub fn bundle_key(trust_domain: &str) -> String {
    format!("identity.bundles.\"{trust_domain}\"")
}

/// Checks the identity files at `now`; returns the warnings (setups that work but are probably a
/// mistake), each one line.
///
/// # Errors
///
/// A [`ConfigError::Invalid`] naming the key (`identity.cert`, `identity.key` or
/// `identity.bundles."td"`), with the file and the reason in its message: a file that cannot be
/// read, holds no PEM block of the right kind (empty) or garbage; a leaf without a SPIFFE ID,
/// expired or not valid yet; a key that does not match the leaf; a chain that the bundle of its
/// own trust domain does not accept.
pub fn check(identity: &Identity, now: SystemTime) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    let cert_key = "identity.cert";
    let cert_path = &identity.cert;
    let chain = certificates(cert_key, cert_path)?;
    let leaf = chain.first().ok_or_else(|| {
        invalid(
            cert_key,
            cert_path,
            "holds no certificate (no CERTIFICATE PEM block)",
        )
    })?;
    let id = spiffe_id_of(leaf).map_err(|e| {
        invalid(
            cert_key,
            cert_path,
            format!("the leaf certificate has no usable SPIFFE ID (one spiffe:// URI SAN): {e}"),
        )
    })?;
    let leaf_facts = facts(cert_key, cert_path, leaf)?;
    if now > leaf_facts.not_after {
        return Err(invalid(
            cert_key,
            cert_path,
            format!("the certificate of {id} expired ({})", leaf_facts.validity),
        ));
    }
    if now < leaf_facts.not_before {
        return Err(invalid(
            cert_key,
            cert_path,
            format!(
                "the certificate of {id} is not valid yet ({}); check the clocks",
                leaf_facts.validity
            ),
        ));
    }
    if leaf_facts.is_ca {
        warnings.push(format!(
            "`{cert_key}` ({}): the certificate of {id} is a CA certificate (CA:true); peers that \
             follow the X.509-SVID rules refuse it",
            cert_path.display()
        ));
    }

    let key_path = &identity.key;
    let text = read("identity.key", key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&text).map_err(|e| {
        invalid(
            "identity.key",
            key_path,
            format!("holds no usable private key PEM block: {e}"),
        )
    })?;
    X509Svid::new(chain.clone(), key, &mesh_tls::crypto_provider()).map_err(|e| {
        let why = match e {
            SvidLoadError::Key(e) => e.to_string(),
            other => other.to_string(),
        };
        invalid(
            "identity.key",
            key_path,
            format!(
                "the private key is unusable or does not belong to the certificate in {}: {why}",
                cert_path.display()
            ),
        )
    })?;

    let mut bundles = TrustBundleSet::new();
    for (trust_domain, path) in &identity.bundles {
        let key = bundle_key(trust_domain.as_str());
        let roots = certificates(&key, path)?;
        for (index, root) in roots.iter().enumerate() {
            if !facts(&key, path, root)?.is_ca {
                warnings.push(format!(
                    "`{key}` ({}): certificate #{index} is not a CA certificate (a leaf?); a \
                     bundle holds the roots of the trust domain",
                    path.display()
                ));
            }
        }
        bundles
            .insert(trust_domain.clone(), roots)
            .map_err(|e| invalid(&key, path, e))?;
    }
    own_domain_accepts(identity, &id, &chain, bundles, now, &mut warnings)?;
    Ok(warnings)
}

/// The bundle of the SVID's own trust domain must accept its chain, or no peer sharing that
/// bundle would; without such a bundle, only a warning (a gateway may present an ID of a domain
/// it does not trust for inbound peers).
fn own_domain_accepts(
    identity: &Identity,
    id: &SpiffeId,
    chain: &[CertificateDer<'static>],
    bundles: TrustBundleSet,
    now: SystemTime,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let own: &TrustDomain = id.trust_domain();
    let Some((_, bundle_path)) = identity.bundles.iter().find(|(td, _)| td == own) else {
        warnings.push(format!(
            "no bundle in `identity.bundles` covers trust domain {own} of this workload's ID {id}; \
             peers of {own} cannot be verified"
        ));
        return Ok(());
    };
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let verifier = SvidVerifier::new(Arc::new(bundles), &mesh_tls::crypto_provider());
    let result = verifier.verify_server(
        &chain[0],
        &chain[1..],
        UnixTime::since_unix_epoch(since_epoch),
    );
    match result {
        Ok(_) => Ok(()),
        // Warned about above; every other rule is the chain's.
        Err(mesh_tls::SvidError::LeafIsCa) => Ok(()),
        Err(e) => Err(invalid(
            "identity.cert",
            &identity.cert,
            format!(
                "the certificate of {id} is not accepted by its own trust domain's bundle \
                 `{}` ({}): {e}",
                bundle_key(own.as_str()),
                bundle_path.display()
            ),
        )),
    }
}

fn invalid(key: &str, path: &Path, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::invalid(key, format!("{}: {reason}", path.display()))
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| invalid(key, path, format!("cannot read: {e}")))
}

/// Every `CERTIFICATE` block of the file; none is an error.
fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let text = read(key, path)?;
    let certificates = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, path, format!("not valid PEM: {e}")))?;
    if certificates.is_empty() {
        return Err(invalid(
            key,
            path,
            "holds no certificate (empty, or no CERTIFICATE PEM block)",
        ));
    }
    Ok(certificates)
}

/// What the check needs from one certificate.
struct Facts {
    is_ca: bool,
    not_before: SystemTime,
    not_after: SystemTime,
    /// `valid from … to …`, as the certificate says (UTC).
    validity: String,
}

fn facts(key: &str, path: &Path, certificate: &CertificateDer<'_>) -> Result<Facts, ConfigError> {
    let bad =
        |e: &dyn std::fmt::Display| invalid(key, path, format!("not an X.509 certificate: {e}"));
    let (_, cert) = X509Certificate::from_der(certificate.as_ref()).map_err(|e| bad(&e))?;
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| bad(&e))?
        .is_some_and(|ext| ext.value.ca);
    let validity = cert.validity();
    let at = |time: x509_parser::time::ASN1Time| {
        let secs = time.timestamp();
        let offset = std::time::Duration::from_secs(secs.unsigned_abs());
        match secs >= 0 {
            true => SystemTime::UNIX_EPOCH.checked_add(offset),
            false => SystemTime::UNIX_EPOCH.checked_sub(offset),
        }
        .ok_or_else(|| bad(&"validity date out of range"))
    };
    Ok(Facts {
        is_ca,
        not_before: at(validity.not_before)?,
        not_after: at(validity.not_after)?,
        validity: format!(
            "valid from {} to {}",
            validity.not_before, validity.not_after
        ),
    })
}
