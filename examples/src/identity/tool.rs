//! The files of `mesh-sidecar identity`: a test trust domain's CA, SVIDs it issues and trust
//! bundles, in the PEM layout `[identity]` reads.
//!
//! Every file is written next to its final name and renamed into place, so a sidecar polling the
//! directory (every 5 s) never reads half a file; private keys are created with mode `0600`.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mesh_tls::{SpiffeId, TrustDomain};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The CA's certificate in a CA directory (also its trust bundle, `bundle.pem`).
pub const CA_CERT: &str = "ca-cert.pem";
/// The CA's private key in a CA directory (mode `0600`).
pub const CA_KEY: &str = "ca-key.pem";
/// The trust bundle [`init`] writes beside the CA: its certificate alone.
pub const BUNDLE: &str = "bundle.pem";
/// The certificate chain [`issue`] writes (leaf first).
pub const SVID_CERT: &str = "svid.pem";
/// The private key [`issue`] writes (mode `0600`).
pub const SVID_KEY: &str = "svid-key.pem";

/// How long a CA made by [`init`] is valid: ten years, as a local test domain should not expire
/// under its user; rotate it with the documented procedure instead.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How far back the validity of every certificate starts: 5 minutes, so a peer whose clock is a
/// little behind does not see it as not valid yet.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Why the tool could not do its work.
#[derive(Debug)]
#[non_exhaustive]
pub enum ToolError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// `init` would replace an existing CA key (a CA's key is never overwritten).
    Exists(PathBuf),
    /// A CA directory's files are not a CA certificate and its key.
    BadCa {
        /// The file at fault.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The SPIFFE ID to issue is not in the CA's trust domain.
    WrongTrustDomain {
        /// The ID asked for.
        id: SpiffeId,
        /// The CA's trust domain.
        ca: TrustDomain,
    },
    /// Certificate generation failed.
    Generate(rcgen::Error),
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ToolError::Exists(path) => write!(
                f,
                "{} exists: a CA key is never overwritten (choose another --out)",
                path.display()
            ),
            ToolError::BadCa { path, reason } => {
                write!(
                    f,
                    "{}: not a CA made by `identity init`: {reason}",
                    path.display()
                )
            }
            ToolError::WrongTrustDomain { id, ca } => {
                write!(f, "{id} is not in the CA's trust domain {ca}")
            }
            ToolError::Generate(e) => write!(f, "certificate generation failed: {e}"),
        }
    }
}

impl std::error::Error for ToolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ToolError::Io { source, .. } => Some(source),
            ToolError::Generate(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rcgen::Error> for ToolError {
    fn from(e: rcgen::Error) -> Self {
        ToolError::Generate(e)
    }
}

/// Makes a root CA for `trust_domain` in `out` (created if needed): [`CA_CERT`], [`CA_KEY`] and
/// [`BUNDLE`] (the roots file to give `identity.bundles`). The CA carries the URI SAN
/// `spiffe://<trust domain>`, by which [`issue`] knows its trust domain.
pub fn init(trust_domain: &TrustDomain, out: &Path) -> Result<(), ToolError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let key_path = out.join(CA_KEY);
    if key_path.exists() {
        return Err(ToolError::Exists(key_path));
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("{trust_domain} root CA"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![SanType::URI(format!("spiffe://{trust_domain}").try_into()?)];
    validity(&mut params, CA_LIFETIME);
    let cert = params.self_signed(&key)?;
    write_atomically(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_atomically(&out.join(CA_CERT), cert.pem().as_bytes(), false)?;
    write_atomically(&out.join(BUNDLE), cert.pem().as_bytes(), false)
}

/// Issues an X.509-SVID for `id` from the CA in `ca` (made by [`init`]), valid for `lifetime`,
/// into `out` (created if needed): [`SVID_CERT`] and [`SVID_KEY`]. The leaf follows the
/// X.509-SVID rules: one URI SAN, `CA:false`, key usage `digitalSignature`, extended key usage
/// `serverAuth` and `clientAuth`.
pub fn issue(ca: &Path, id: &SpiffeId, lifetime: Duration, out: &Path) -> Result<(), ToolError> {
    let cert_path = ca.join(CA_CERT);
    let key_path = ca.join(CA_KEY);
    let ca_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
    let ca_key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
    let bad = |path: &Path, reason: String| ToolError::BadCa {
        path: path.to_owned(),
        reason,
    };
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| bad(&key_path, e.to_string()))?;
    let ca_der = rustls_pki_types::pem::PemObject::from_pem_slice(ca_pem.as_bytes())
        .map_err(|e: rustls_pki_types::pem::Error| bad(&cert_path, e.to_string()))?;
    let ca_domain = ca_trust_domain(&ca_der).map_err(|reason| bad(&cert_path, reason))?;
    if id.trust_domain() != &ca_domain {
        return Err(ToolError::WrongTrustDomain {
            id: id.clone(),
            ca: ca_domain,
        });
    }
    let issuer =
        Issuer::from_ca_cert_der(&ca_der, ca_key).map_err(|e| bad(&cert_path, e.to_string()))?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.subject_alt_names = vec![SanType::URI(id.as_str().try_into()?)];
    validity(&mut params, lifetime);
    let cert = params.signed_by(&key, &issuer)?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    // The key first: a sidecar that polls between the two renames sees the new key with the old
    // certificate, refuses the pair, and takes the new pair at its next poll.
    write_atomically(&out.join(SVID_KEY), key.serialize_pem().as_bytes(), true)?;
    write_atomically(&out.join(SVID_CERT), cert.pem().as_bytes(), false)
}

/// Writes a trust bundle holding the CA certificate of every directory in `cas`, in order, to
/// `out` (the file `identity.bundles."td"` names). During a CA rotation it holds the old and the
/// new root.
pub fn bundle(cas: &[PathBuf], out: &Path) -> Result<(), ToolError> {
    let mut pem = String::new();
    for ca in cas {
        let path = ca.join(CA_CERT);
        pem.push_str(&std::fs::read_to_string(&path).map_err(io(&path))?);
    }
    if let Some(dir) = out.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    write_atomically(out, pem.as_bytes(), false)
}

/// The trust domain of a CA certificate, from its `spiffe://<trust domain>` URI SAN.
fn ca_trust_domain(der: &rustls_pki_types::CertificateDer<'_>) -> Result<TrustDomain, String> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der.as_ref())
        .map_err(|e| e.to_string())?;
    let san = cert.subject_alternative_name().map_err(|e| e.to_string())?;
    let uri = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .find_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix("spiffe://"),
            _ => None,
        })
        .ok_or("no spiffe://<trust domain> URI SAN")?;
    uri.parse()
        .map_err(|e: mesh_tls::SpiffeIdError| e.to_string())
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + now.saturating_sub(BACKDATE);
    params.not_after = epoch + (now + lifetime);
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ToolError + '_ {
    move |source| ToolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `data` to a temporary file beside `path` (mode `0600` when `private`), flushes it to
/// disk, then renames it over `path`.
fn write_atomically(path: &Path, data: &[u8], private: bool) -> Result<(), ToolError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(data)?;
        file.sync_all()
    });
    if let Err(source) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(ToolError::Io {
            path: path.to_owned(),
            source,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mesh-identity-tool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn issued_svids_load_and_chain_to_the_bundle() {
        let dir = temp("chain");
        let td: TrustDomain = "local.example".parse().unwrap();
        init(&td, &dir.join("ca")).unwrap();
        let id: SpiffeId = "spiffe://local.example/web".parse().unwrap();
        issue(
            &dir.join("ca"),
            &id,
            Duration::from_secs(3600),
            &dir.join("web"),
        )
        .unwrap();

        let chain = std::fs::read(dir.join("web").join(SVID_CERT)).unwrap();
        let key = std::fs::read(dir.join("web").join(SVID_KEY)).unwrap();
        let svid =
            mesh_tls::X509Svid::from_pem(&chain, &key, &mesh_tls::crypto_provider()).unwrap();
        assert_eq!(svid.id(), &id);
        let mut bundles = mesh_tls::TrustBundleSet::new();
        bundles
            .insert_pem(td, &std::fs::read(dir.join("ca").join(BUNDLE)).unwrap())
            .unwrap();
        let verifier =
            mesh_tls::SvidVerifier::new(std::sync::Arc::new(bundles), &mesh_tls::crypto_provider());
        let now = rustls_pki_types::UnixTime::now();
        assert_eq!(
            verifier.verify_client(&svid.chain()[0], &[], now).unwrap(),
            id
        );
        assert_eq!(
            verifier.verify_server(&svid.chain()[0], &[], now).unwrap(),
            id
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [dir.join("ca").join(CA_KEY), dir.join("web").join(SVID_KEY)] {
                let mode = std::fs::metadata(&key).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", key.display());
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_a_foreign_id_and_an_existing_ca() {
        let dir = temp("refuse");
        let td: TrustDomain = "local.example".parse().unwrap();
        init(&td, &dir).unwrap();
        assert!(matches!(init(&td, &dir), Err(ToolError::Exists(_))));
        let other: SpiffeId = "spiffe://other.example/web".parse().unwrap();
        let err = issue(&dir, &other, Duration::from_secs(60), &dir).unwrap_err();
        assert!(matches!(err, ToolError::WrongTrustDomain { .. }), "{err}");
        let err = issue(&dir.join("nope"), &other, Duration::from_secs(60), &dir).unwrap_err();
        assert!(err.to_string().contains(CA_CERT), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
