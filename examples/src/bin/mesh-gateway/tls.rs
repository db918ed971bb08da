//! TLS termination on the public listener with an ordinary server certificate.
//!
//! Edge clients are browsers and API clients, not mesh workloads: they verify the gateway by DNS name
//! against public roots and present no certificate. So this is plain server-side TLS (TLS 1.3 and 1.2,
//! ALPN `h2` and `http/1.1`) with the crypto provider mesh-tls selects, not mesh-tls's SPIFFE acceptor.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use http::Extensions;
use mesh_core::BoxError;
use mesh_core::server::{Acceptor, ConnectionInfo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A mesh-core [`Acceptor`] that terminates TLS with one certificate chain and key.
#[derive(Clone)]
pub(crate) struct ServerTlsAcceptor(tokio_rustls::TlsAcceptor);

impl ServerTlsAcceptor {
    /// Loads the PEM chain and key; errors name the file and the reason.
    pub(crate) fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, BoxError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("`tls.cert` ({}): {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "`tls.cert` ({}): no certificate in the file",
                cert.display()
            )
            .into());
        }
        let key_der = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("`tls.key` ({}): {e}", key.display()))?;
        let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
        let mut config = rustls::ServerConfig::builder_with_provider(mesh_tls::crypto_provider())
            .with_protocol_versions(&versions)?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|e| format!("`tls`: the certificate and key do not fit together: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }
}

type Handshake =
    Pin<Box<dyn Future<Output = Result<(TlsStream<TcpStream>, Extensions), BoxError>> + Send>>;

impl Acceptor for ServerTlsAcceptor {
    type Io = TlsStream<TcpStream>;
    type Future = Handshake;

    fn accept(&self, tcp: TcpStream, _info: &ConnectionInfo) -> Self::Future {
        let acceptor = self.0.clone();
        // One boxed future per connection, not per request.
        Box::pin(async move {
            let stream = acceptor.accept(tcp).await?;
            Ok((stream, Extensions::new()))
        })
    }
}
