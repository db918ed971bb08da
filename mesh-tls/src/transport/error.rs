//! [`HandshakeError`]: why a TLS connection could not be set up.

use std::io;

use rustls::InvalidMessage;

use mesh_core::error::FailureDetail;

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

    /// The variant's name (`"NotTls"`, `"Io"` …), or for a refused certificate the
    /// [`SvidError::kind`] (`"WrongTrustDomain"` …): a stable label for a log field or a metric
    /// attribute, which names no ID, certificate or address.
    pub fn kind(&self) -> &'static str {
        match self {
            HandshakeError::Svid(error) => error.kind(),
            HandshakeError::NotTls => "NotTls",
            HandshakeError::Tls(_) => "Tls",
            HandshakeError::Io(_) => "Io",
            HandshakeError::MissingEndpointIdentity => "MissingEndpointIdentity",
            HandshakeError::InvalidEndpointIdentity(_) => "InvalidEndpointIdentity",
        }
    }

    /// The short, non-sensitive reason a proxy edge may send to its client
    /// (`tls: certificate not valid for the expected identity (IdentityMismatch)`); `None` for a
    /// transport failure, which mesh-core describes by its I/O error kind.
    pub fn detail(&self) -> Option<FailureDetail> {
        let summary = match self {
            HandshakeError::Svid(error) => svid_summary(error),
            HandshakeError::NotTls => "tls: the peer did not speak TLS",
            HandshakeError::Tls(_) => "tls: handshake failed",
            HandshakeError::Io(_) => return None,
            HandshakeError::MissingEndpointIdentity
            | HandshakeError::InvalidEndpointIdentity(_) => {
                "tls: no valid expected identity for the endpoint"
            }
        };
        Some(FailureDetail::new(summary).with_kind(self.kind()))
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

/// The summary of a refused certificate, by the rule it broke.
fn svid_summary(error: &SvidError) -> &'static str {
    match error {
        SvidError::IdentityMismatch { .. }
        | SvidError::WrongTrustDomain { .. }
        | SvidError::UnknownTrustDomain { .. }
        | SvidError::UnknownIssuer { .. }
        | SvidError::SelfSigned => "tls: certificate not valid for the expected identity",
        SvidError::NotAuthorized { .. } => "tls: peer identity not authorized",
        SvidError::Expired { .. } | SvidError::NotYetValid { .. } => {
            "tls: certificate outside its validity period"
        }
        _ => "tls: peer certificate is not a valid SVID",
    }
}

/// mesh-tls's describer for mesh-core's error-to-response layer
/// ([`ErrorResponseLayer::describe_with`](mesh_core::error::ErrorResponseLayer::describe_with)):
/// the [`HandshakeError::detail`] of a handshake error, or of a refused certificate found on its
/// own (inside a rustls error); `None` for every other error.
///
/// ```
/// use mesh_core::error::ErrorResponseLayer;
///
/// let edge = ErrorResponseLayer::new().describe_with(mesh_tls::failure_detail);
/// # let _ = edge;
/// ```
pub fn failure_detail(error: &(dyn std::error::Error + 'static)) -> Option<FailureDetail> {
    if let Some(handshake) = error.downcast_ref::<HandshakeError>() {
        return handshake.detail();
    }
    let svid = match error.downcast_ref::<rustls::Error>() {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
            other.0.downcast_ref::<SvidError>()
        }
        _ => error.downcast_ref::<SvidError>(),
    }?;
    Some(FailureDetail::new(svid_summary(svid)).with_kind(svid.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SpiffeId, TrustDomain};

    #[test]
    fn details_name_the_rule_but_not_the_ids() {
        let id = SpiffeId::new("spiffe://evil.example/ns/db").unwrap();
        let svid = SvidError::WrongTrustDomain {
            id,
            signed_by: "other.example".parse::<TrustDomain>().unwrap(),
        };
        let connect = mesh_core::error::ConnectError::new(HandshakeError::Svid(svid.clone()));
        let detail = mesh_core::error::describe_failure(&connect, Some(failure_detail)).unwrap();
        assert_eq!(
            detail.to_string(),
            "tls: certificate not valid for the expected identity (WrongTrustDomain)"
        );
        assert!(!detail.to_string().contains("example"));
        // Inside rustls's error, as the verifiers hand it over.
        let rustls = rustls::Error::from(svid);
        assert_eq!(failure_detail(&rustls), Some(detail));
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(failure_detail(&HandshakeError::Io(io)), None);
        assert_eq!(HandshakeError::NotTls.kind(), "NotTls");
    }
}
