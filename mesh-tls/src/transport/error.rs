//! [`HandshakeError`]: why a TLS connection could not be set up.

use std::io;

use rustls::InvalidMessage;

use crate::{SpiffeIdError, SvidError};

/// Why [`TlsConnector`](crate::TlsConnector) or [`TlsAcceptor`](crate::TlsAcceptor) could not set up
/// a connection. The mesh-core client wraps it in a
/// [`ConnectError`](mesh_core::error::ConnectError); the mesh-core server logs and counts it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer's certificate was refused; the variant says which rule it broke.
    #[error("peer certificate refused: {0}")]
    Svid(#[source] SvidError),
    /// The peer did not speak TLS (for example a plaintext HTTP client on the TLS port).
    #[error("the peer did not speak TLS")]
    NotTls,
    /// The TLS handshake failed for another reason (an alert from the peer, no common protocol
    /// version or cipher suite …).
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] rustls::Error),
    /// The transport failed (connect refused, reset, closed mid-handshake …).
    #[error("transport failed during the TLS handshake: {0}")]
    Io(#[source] io::Error),
    /// The endpoint has no expected identity and the connector requires one.
    #[error("the endpoint has no expected SPIFFE ID; refusing to connect to an unknown peer")]
    MissingEndpointIdentity,
    /// The endpoint's expected identity is not a valid SPIFFE ID.
    #[error("the endpoint's expected identity is not a valid SPIFFE ID: {0}")]
    InvalidEndpointIdentity(#[source] SpiffeIdError),
}

impl HandshakeError {
    /// The [`SvidError`], when the peer's certificate was refused.
    pub fn svid_error(&self) -> Option<&SvidError> {
        match self {
            HandshakeError::Svid(error) => Some(error),
            _ => None,
        }
    }

    /// Sorts an error from tokio-rustls (which wraps rustls errors in `io::Error`).
    pub(crate) fn from_io(error: io::Error) -> Self {
        let tls = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match tls {
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
                match other.0.downcast_ref::<SvidError>() {
                    Some(svid) => HandshakeError::Svid(svid.clone()),
                    None => HandshakeError::Tls(tls.cloned().expect("matched above")),
                }
            }
            Some(rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType)) => {
                HandshakeError::NotTls
            }
            Some(other) => HandshakeError::Tls(other.clone()),
            None => HandshakeError::Io(error),
        }
    }
}
