//! The mTLS handshake load generator (`bench-e2e --handshake-client …`, run by the orchestrator as
//! a child pinned to CPU 0). `concurrency` tasks on one thread each loop until the deadline: TCP
//! connect → TLS 1.3 handshake presenting the `loadgen` client certificate → one
//! `GET / Connection: close` → read the answer to the end → close. No keep-alive and no session
//! resumption, so every request pays a full handshake.
//!
//! The client offers only X25519 for the key exchange: rustls would otherwise offer the
//! post-quantum hybrid first, which the sidecar (rustls) accepts and HAProxy (OpenSSL 3.0) does
//! not, and the two servers would then do different work. The server certificate is checked with
//! mesh-tls's SPIFFE verifier against the test CA (it has no DNS name to check).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mesh_tls::{SpiffeServerVerifier, SvidVerifier, TrustBundleSet, TrustDomain};
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::version::TLS13;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::netio;

/// What one handshake-client run reports (one JSON line on stdout).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct HandshakeReport {
    /// Completed connect + handshake + request + answer.
    pub(crate) completed: u64,
    /// Failed attempts.
    pub(crate) errors: u64,
    /// Seconds from the first attempt to the deadline.
    pub(crate) seconds: f64,
    /// The first error, if any, for the log.
    pub(crate) first_error: Option<String>,
}

/// The client TLS configuration: TLS 1.3, X25519, client certificate, no resumption.
fn client_config(dir: &Path) -> Result<ClientConfig, String> {
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"));
    let chain = CertificateDer::pem_slice_iter(&read("loadgen-cert.pem")?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("loadgen-cert.pem: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(&read("loadgen-key.pem")?)
        .map_err(|e| format!("loadgen-key.pem: {e}"))?;
    let domain = std::fs::read_to_string(dir.join("trust-domain"))
        .map_err(|e| format!("trust-domain: {e}"))?;
    let domain = TrustDomain::new(domain.trim()).map_err(|e| e.to_string())?;
    let mut bundles = TrustBundleSet::new();
    bundles
        .insert_pem(domain, &read("roots.pem")?)
        .map_err(|e| format!("roots.pem: {e}"))?;

    let mut provider: CryptoProvider = (*mesh_tls::crypto_provider()).clone();
    provider
        .kx_groups
        .retain(|g| g.name() == rustls::NamedGroup::X25519);
    if provider.kx_groups.is_empty() {
        return Err("the crypto provider has no X25519".into());
    }
    let verifier = SpiffeServerVerifier::new(SvidVerifier::new(Arc::new(bundles), &provider));
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// Runs the load for `duration` against `addr`; the result goes to stdout as JSON.
pub(crate) fn run(
    addr: SocketAddr,
    dir: &Path,
    concurrency: usize,
    duration: Duration,
) -> Result<HandshakeReport, String> {
    let config = Arc::new(client_config(dir)?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let connector = TlsConnector::from(config);
        let completed = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
        let start = Instant::now();
        let deadline = start + duration;
        let tasks: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                let (connector, completed, errors, first_error) = (
                    connector.clone(),
                    completed.clone(),
                    errors.clone(),
                    first_error.clone(),
                );
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        // Each attempt is bounded; one cut by the deadline is neither counted
                        // as completed nor as an error.
                        let attempt = tokio::time::timeout_at(deadline, once(&connector, addr));
                        match attempt.await {
                            Ok(Ok(())) => {
                                completed.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(Err(e)) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                first_error
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .get_or_insert(e);
                                // Do not spin on a refused connection.
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        let first_error = first_error.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(HandshakeReport {
            completed: completed.load(Ordering::Relaxed),
            errors: errors.load(Ordering::Relaxed),
            seconds: start.elapsed().as_secs_f64(),
            first_error,
        })
    })
}

async fn once(connector: &TlsConnector, addr: SocketAddr) -> Result<(), String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    netio::write_all(&mut tls, netio::get_close().as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let status = netio::read_response(&mut tls, true)
        .await
        .map_err(|e| format!("read: {e}"))?;
    if status != 200 {
        return Err(format!("status {status}"));
    }
    Ok(())
}
