//! Loopback handshake helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use http::Extensions;
use mesh_core::server::{Acceptor, ConnectionInfo};
use mesh_core::{BoxError, Endpoint};
use mesh_tls::test_ca::TestSvid;
use mesh_tls::{
    HandshakeError, SpiffeClientVerifier, SpiffeServerVerifier, SvidVerifier, TlsAcceptor,
    TlsConnector, TrustBundleSet, crypto_provider,
};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Turns a boxed failure into the `HandshakeError` it must be.
pub fn handshake_error(error: BoxError) -> HandshakeError {
    match error.downcast::<HandshakeError>() {
        Ok(error) => *error,
        Err(other) => panic!("expected a HandshakeError, got {other:?}"),
    }
}

/// A raw rustls client presenting `client` (any certificate, even a broken one) and accepting a
/// server whose SVID verifies against `bundles`.
pub fn raw_client_config(client: &TestSvid, bundles: Arc<TrustBundleSet>) -> Arc<ClientConfig> {
    let verifier = SpiffeServerVerifier::new(SvidVerifier::new(bundles, &crypto_provider()));
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(client.chain().to_vec(), client.key())
        .unwrap();
    Arc::new(config)
}

/// A raw rustls server presenting `server` (any certificate, even a broken one) and requiring a
/// client SVID that verifies against `bundles`.
pub fn raw_server_config(server: &TestSvid, bundles: Arc<TrustBundleSet>) -> Arc<ServerConfig> {
    let verifier = SpiffeClientVerifier::new(SvidVerifier::new(bundles, &crypto_provider()));
    let config = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(server.chain().to_vec(), server.key())
        .unwrap();
    Arc::new(config)
}

/// Runs `acceptor` on one loopback connection from a raw rustls client configured by
/// `client_config`; returns what the acceptor returned.
pub async fn accept_one(
    acceptor: TlsAcceptor,
    client_config: Arc<ClientConfig>,
) -> Result<Extensions, HandshakeError> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(client_config);
        let name = ServerName::IpAddress(addr.ip().into());
        // Keep reading until the server answers or closes, so that it sees the whole handshake.
        if let Ok(mut tls) = connector.connect(name, tcp).await {
            let _ = tls.write_all(b"ping").await;
            let mut buf = [0; 4];
            let _ = tls.read_exact(&mut buf).await;
        }
    });
    let (tcp, peer) = listener.accept().await.unwrap();
    let info = ConnectionInfo::new(peer, addr);
    let result = acceptor.accept(tcp, &info).await;
    let result = match result {
        Ok((mut tls, extensions)) => {
            let mut buf = [0; 4];
            tls.read_exact(&mut buf).await.unwrap();
            tls.write_all(b"pong").await.unwrap();
            Ok(extensions)
        }
        Err(error) => Err(handshake_error(error)),
    };
    client.await.unwrap();
    result
}

/// Runs one connection from `connector` to a raw rustls server configured by `server_config`, the
/// endpoint expecting `expected` (a SPIFFE ID); returns the connector's result.
pub async fn connect_one(
    connector: TlsConnector,
    server_config: Arc<ServerConfig>,
    expected: Option<&str>,
) -> Result<(), HandshakeError> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
        if let Ok(mut tls) = acceptor.accept(tcp).await {
            let mut buf = [0; 4];
            if tls.read_exact(&mut buf).await.is_ok() {
                let _ = tls.write_all(b"pong").await;
            }
        }
    });
    let result = match connector.oneshot(endpoint(addr, expected)).await {
        Ok(mut tls) => {
            tls.write_all(b"ping").await.unwrap();
            let mut buf = [0; 4];
            tls.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"pong");
            Ok(())
        }
        Err(error) => Err(handshake_error(error)),
    };
    server.await.unwrap();
    result
}

/// An endpoint at `addr` expecting `identity`.
pub fn endpoint(addr: SocketAddr, identity: Option<&str>) -> Endpoint {
    let mut builder = Endpoint::builder(addr);
    if let Some(id) = identity {
        builder = builder.identity(id);
    }
    builder.build().unwrap()
}
