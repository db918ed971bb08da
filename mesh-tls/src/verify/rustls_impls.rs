//! The rustls verifier traits, on top of [`SvidVerifier`].

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::{SvidError, SvidVerifier};
use crate::SpiffeId;

/// The server side's check of client certificates: a rustls [`ClientCertVerifier`] that requires a
/// client certificate and verifies it with an [`SvidVerifier`].
///
/// Rejections reach rustls as `InvalidCertificate(Other(..))` around an [`SvidError`]; rustls sends
/// the client a `bad_certificate`-family alert and fails the handshake.
#[derive(Clone, Debug)]
pub struct SpiffeClientVerifier {
    svid: SvidVerifier,
}

impl SpiffeClientVerifier {
    /// Wraps `svid`.
    pub fn new(svid: SvidVerifier) -> Self {
        Self { svid }
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No hints: the client has one SVID and should always send it.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.svid.verify_client(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, self.svid.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, self.svid.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.svid.algorithms().supported_schemes()
    }
}

/// The client side's check of server certificates: a rustls [`ServerCertVerifier`] that verifies the
/// server's SVID with an [`SvidVerifier`] and, when set, requires one exact server ID.
///
/// The TLS server name (SNI, or the IP address dialled) is **not** the identity and is ignored: the
/// expected SPIFFE ID plays its part. [`TlsConnector`](crate::TlsConnector) builds one per connection
/// with the endpoint's identity.
#[derive(Clone, Debug)]
pub struct SpiffeServerVerifier {
    svid: SvidVerifier,
    expected: Option<SpiffeId>,
}

impl SpiffeServerVerifier {
    /// Wraps `svid`; any server ID the authorizer accepts is allowed.
    pub fn new(svid: SvidVerifier) -> Self {
        Self {
            svid,
            expected: None,
        }
    }

    /// Requires the server to be exactly `id` (checked after the authorizer).
    pub fn expecting(mut self, id: SpiffeId) -> Self {
        self.expected = Some(id);
        self
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = self.svid.verify_server(end_entity, intermediates, now)?;
        if let Some(expected) = &self.expected
            && *expected != found
        {
            let expected = expected.clone();
            return Err(SvidError::IdentityMismatch { expected, found }.into());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, self.svid.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, self.svid.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.svid.algorithms().supported_schemes()
    }
}
