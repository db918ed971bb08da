//! A test certificate authority (feature `test-ca`): a CA per trust domain, X.509-SVIDs with chosen
//! IDs, lifetimes and extensions, and the deliberately broken certificates the verifier must refuse.
//!
//! **Not for production**: keys live in memory, and the builders panic on nonsense arguments (an ID
//! that is not ASCII, a lifetime ending before 1970) because they only serve tests and demos.
//! Every certificate is X.509 v3 (rustls rejects v1) with ECDSA P-256 keys.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use mesh_tls::test_ca::TestCa;
//!
//! let prod = TestCa::new("prod.example");
//! let web = prod.issue("/ns/shop/sa/web");
//! assert_eq!(web.svid().id().as_str(), "spiffe://prod.example/ns/shop/sa/web");
//!
//! // A certificate that expired an hour ago, and one with two URI SANs.
//! let hour = Duration::from_secs(3600);
//! let expired = prod.svid("/ns/shop/sa/web")
//!     .not_before(SystemTime::now() - 2 * hour)
//!     .not_after(SystemTime::now() - hour)
//!     .build();
//! let two_ids = prod.svid("/a").uri_sans(["spiffe://prod.example/a", "spiffe://prod.example/b"]).build();
//! # let _ = (expired, two_ids);
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{TrustBundleSet, TrustDomain, X509Svid};

/// A certificate authority for one trust domain: a self-signed root, or an intermediate under
/// another `TestCa` of the same domain.
pub struct TestCa {
    trust_domain: TrustDomain,
    issuer: Issuer<'static, KeyPair>,
    /// This CA's certificate.
    cert: CertificateDer<'static>,
    /// The intermediates an SVID chain must include: this CA's certificate and those above it,
    /// excluding the root. Empty for a root.
    intermediates: Vec<CertificateDer<'static>>,
    /// PEM forms of `intermediates`, in the same order.
    intermediates_pem: Vec<String>,
    /// The root certificate at the top.
    root: CertificateDer<'static>,
    root_pem: String,
}

impl TestCa {
    /// A new root CA for `trust_domain`, valid from an hour ago for a year.
    ///
    /// # Panics
    ///
    /// If `trust_domain` is not a valid trust domain name.
    pub fn new(trust_domain: &str) -> Self {
        let trust_domain = TrustDomain::new(trust_domain).expect("a valid trust domain");
        let key = KeyPair::generate().expect("key generation");
        let params = ca_params(&trust_domain, "root");
        let cert = params.self_signed(&key).expect("root certificate");
        Self {
            trust_domain,
            issuer: Issuer::new(params, key),
            root: cert.der().clone(),
            root_pem: cert.pem(),
            cert: cert.der().clone(),
            intermediates: Vec::new(),
            intermediates_pem: Vec::new(),
        }
    }

    /// A new intermediate CA signed by this one, in the same trust domain. SVIDs it issues carry
    /// the intermediates in their chain.
    pub fn intermediate(&self) -> Self {
        let key = KeyPair::generate().expect("key generation");
        let params = ca_params(&self.trust_domain, "intermediate");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("intermediate certificate");
        let mut intermediates = vec![cert.der().clone()];
        intermediates.extend(self.intermediates.iter().cloned());
        let mut intermediates_pem = vec![cert.pem()];
        intermediates_pem.extend(self.intermediates_pem.iter().cloned());
        Self {
            trust_domain: self.trust_domain.clone(),
            issuer: Issuer::new(params, key),
            cert: cert.der().clone(),
            intermediates,
            intermediates_pem,
            root: self.root.clone(),
            root_pem: self.root_pem.clone(),
        }
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The trust bundle of this CA's trust domain: its root.
    pub fn roots(&self) -> Vec<CertificateDer<'static>> {
        vec![self.root.clone()]
    }

    /// The root as PEM text.
    pub fn root_pem(&self) -> String {
        self.root_pem.clone()
    }

    /// This CA's own certificate (the root, or the intermediate).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// A bundle set trusting the root of each of `cas`, each under its own trust domain.
    pub fn bundles<'a>(cas: impl IntoIterator<Item = &'a TestCa>) -> Arc<TrustBundleSet> {
        let mut set = TrustBundleSet::new();
        for ca in cas {
            set.insert(ca.trust_domain.clone(), ca.roots())
                .expect("a test root is a valid trust anchor");
        }
        Arc::new(set)
    }

    /// A valid SVID for `spiffe://<trust domain><path>`: an hour old, valid for another day,
    /// `digitalSignature`, extended key usage `serverAuth` + `clientAuth`.
    pub fn issue(&self, path: &str) -> TestSvid {
        self.svid(path).build()
    }

    /// A builder for an SVID of `spiffe://<trust domain><path>`, starting from the defaults of
    /// [`issue`](Self::issue), to change what a test needs.
    pub fn svid(&self, path: &str) -> SvidBuilder<'_> {
        let now = SystemTime::now();
        SvidBuilder {
            ca: self,
            uris: vec![format!("spiffe://{}{path}", self.trust_domain)],
            dns_names: Vec::new(),
            not_before: now - HOUR,
            not_after: now + 24 * HOUR,
            is_ca: false,
            digital_signature: true,
            key_cert_sign: false,
            crl_sign: false,
            client_auth: true,
            server_auth: true,
            self_signed: false,
        }
    }
}

const HOUR: Duration = Duration::from_secs(3600);

fn ca_params(trust_domain: &TrustDomain, role: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("{trust_domain} test {role} CA"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let uri = format!("spiffe://{trust_domain}");
    params.subject_alt_names = vec![SanType::URI(uri.try_into().expect("ASCII trust domain"))];
    let now = SystemTime::now();
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(now - HOUR);
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(now + 365 * 24 * HOUR);
    params
}

/// Builds one SVID, valid or deliberately not. Start from [`TestCa::svid`].
#[must_use = "call build()"]
pub struct SvidBuilder<'a> {
    ca: &'a TestCa,
    uris: Vec<String>,
    dns_names: Vec<String>,
    not_before: SystemTime,
    not_after: SystemTime,
    is_ca: bool,
    digital_signature: bool,
    key_cert_sign: bool,
    crl_sign: bool,
    client_auth: bool,
    server_auth: bool,
    self_signed: bool,
}

impl SvidBuilder<'_> {
    /// Replaces the URI SANs (none, several, or not SPIFFE at all). Each must be ASCII.
    pub fn uri_sans<S: Into<String>>(mut self, uris: impl IntoIterator<Item = S>) -> Self {
        self.uris = uris.into_iter().map(Into::into).collect();
        self
    }

    /// Adds DNS-name SANs (SVIDs may carry them; stock WebPKI verifiers need one).
    pub fn dns_sans<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.dns_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Valid from this time (must be after 1970).
    pub fn not_before(mut self, time: SystemTime) -> Self {
        self.not_before = time;
        self
    }

    /// Valid until this time.
    pub fn not_after(mut self, time: SystemTime) -> Self {
        self.not_after = time;
        self
    }

    /// Marks the leaf `CA:true` (which an SVID leaf must not be).
    pub fn ca(mut self, is_ca: bool) -> Self {
        self.is_ca = is_ca;
        self
    }

    /// Whether the key usage has `digitalSignature` (default `true`).
    pub fn digital_signature(mut self, on: bool) -> Self {
        self.digital_signature = on;
        self
    }

    /// Whether the key usage has `keyCertSign` (default `false`).
    pub fn key_cert_sign(mut self, on: bool) -> Self {
        self.key_cert_sign = on;
        self
    }

    /// Whether the key usage has `cRLSign` (default `false`).
    pub fn crl_sign(mut self, on: bool) -> Self {
        self.crl_sign = on;
        self
    }

    /// Which extended key usages to include (default both). With neither, the extension is left out.
    pub fn extended_key_usage(mut self, client_auth: bool, server_auth: bool) -> Self {
        self.client_auth = client_auth;
        self.server_auth = server_auth;
        self
    }

    /// Signs the leaf with its own key instead of the CA's.
    pub fn self_signed(mut self) -> Self {
        self.self_signed = true;
        self
    }

    /// Generates the key and signs the certificate.
    pub fn build(self) -> TestSvid {
        let key = KeyPair::generate().expect("key generation");
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "test svid");
        params.distinguished_name = name;
        params.subject_alt_names = self
            .uris
            .into_iter()
            .map(|uri| SanType::URI(uri.try_into().expect("an ASCII URI")))
            .chain(
                self.dns_names
                    .into_iter()
                    .map(|name| SanType::DnsName(name.try_into().expect("an ASCII DNS name"))),
            )
            .collect();
        params.not_before = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(self.not_before);
        params.not_after = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(self.not_after);
        params.is_ca = match self.is_ca {
            true => IsCa::Ca(BasicConstraints::Unconstrained),
            false => IsCa::ExplicitNoCa,
        };
        params.key_usages = [
            (self.digital_signature, KeyUsagePurpose::DigitalSignature),
            (self.key_cert_sign, KeyUsagePurpose::KeyCertSign),
            (self.crl_sign, KeyUsagePurpose::CrlSign),
        ]
        .into_iter()
        .filter_map(|(on, usage)| on.then_some(usage))
        .collect();
        params.extended_key_usages = [
            (self.client_auth, ExtendedKeyUsagePurpose::ClientAuth),
            (self.server_auth, ExtendedKeyUsagePurpose::ServerAuth),
        ]
        .into_iter()
        .filter_map(|(on, usage)| on.then_some(usage))
        .collect();

        let leaf = match self.self_signed {
            true => params.self_signed(&key),
            false => params.signed_by(&key, &self.ca.issuer),
        }
        .expect("SVID certificate");
        let mut chain = vec![leaf.der().clone()];
        let mut chain_pem = leaf.pem();
        if !self.self_signed {
            chain.extend(self.ca.intermediates.iter().cloned());
            chain_pem.extend(self.ca.intermediates_pem.iter().map(String::as_str));
        }
        TestSvid {
            chain,
            chain_pem,
            key_pem: key.serialize_pem(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }
}

/// A generated SVID: its chain (leaf first, then intermediates) and private key.
pub struct TestSvid {
    chain: Vec<CertificateDer<'static>>,
    chain_pem: String,
    key: PrivatePkcs8KeyDer<'static>,
    key_pem: String,
}

impl TestSvid {
    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// The chain as PEM text.
    pub fn chain_pem(&self) -> String {
        self.chain_pem.clone()
    }

    /// The key as PEM text (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// The SVID as this crate's identity type.
    ///
    /// # Panics
    ///
    /// If the certificate has no single valid SPIFFE ID (use [`try_svid`](Self::try_svid) for the
    /// deliberately bad ones).
    pub fn svid(&self) -> X509Svid {
        self.try_svid().expect("a usable test SVID")
    }

    /// The SVID as this crate's identity type, if its leaf has a single valid SPIFFE ID.
    pub fn try_svid(&self) -> Result<X509Svid, crate::SvidLoadError> {
        X509Svid::new(self.chain.clone(), self.key(), &crate::crypto_provider())
    }
}

fn since_epoch(time: SystemTime) -> Duration {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .expect("test certificate times are after 1970")
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("trust_domain", &self.trust_domain)
            .field("intermediates", &self.intermediates.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SvidBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SvidBuilder")
            .field("trust_domain", &self.ca.trust_domain)
            .field("uris", &self.uris)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TestSvid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestSvid")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}
