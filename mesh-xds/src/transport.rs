//! Mutual TLS to the control plane: [`XdsTls`], and the connector that puts mesh-tls's
//! [`TlsConnector`] under tonic's channel.
//!
//! tonic dials with a `Service<Uri>` whose connections implement hyper's IO traits; mesh-tls's
//! connector is a `Service<Endpoint>` (an address and the SPIFFE ID the peer must prove) returning
//! a tokio IO. [`ControlPlaneConnector`] bridges the two: it resolves the URI's host, names the
//! expected server identity on the endpoint, lets mesh-tls run the handshake (our SVID presented,
//! the server's verified against the trust bundle of its own trust domain), and wraps the stream
//! in hyper-util's `TokioIo`.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use mesh_core::{BoxError, Endpoint};
use mesh_tls::{SpiffeId, TlsConnector};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::Uri;
use tower::Service;

/// The ALPN protocol a gRPC connection needs; the only one offered to the control plane.
const ALPN_H2: &[u8] = b"h2";

/// How the client proves itself to the control plane and which control plane it accepts: set
/// with [`XdsConfig::tls`](crate::XdsConfig::tls).
///
/// The connection is mutual TLS through mesh-tls: the client presents the SVID of `connector`
/// (the same workload identity the mesh traffic uses), and the control plane must present an
/// X.509-SVID that chains to the trust bundle of its own trust domain **and** carries exactly
/// [`server_identity`](Self::get_server_identity). The host name in the server URI is only dialled;
/// it is not checked against the certificate (SPIFFE identities replace host names). ALPN offers
/// `h2` alone, as gRPC needs HTTP/2.
///
/// A handshake that fails (an untrusted chain, another identity, no client certificate accepted
/// by the server) fails that stream attempt: the reason shows in
/// [`XdsStatus::last_stream_error`](crate::XdsStatus::last_stream_error) and the client retries
/// after its reconnect backoff, keeping the last accepted config.
#[derive(Clone, Debug)]
pub struct XdsTls {
    connector: TlsConnector,
    server_identity: String,
}

impl XdsTls {
    /// Mutual TLS with `connector`, expecting the control plane to be `server_identity`, a SPIFFE
    /// ID such as `spiffe://cluster.local/ns/istio-system/sa/istiod` (Istio's control plane in
    /// the default trust domain).
    ///
    /// The connector's ALPN list is replaced by `h2`; its other settings (TLS versions, the
    /// authorizer, a rotating identity source) are kept. `server_identity` is checked by
    /// [`XdsConfig::validate`](crate::XdsConfig::validate).
    pub fn new(connector: TlsConnector, server_identity: impl Into<String>) -> Self {
        Self {
            connector: connector.alpn_protocols(vec![ALPN_H2.to_vec()]),
            server_identity: server_identity.into(),
        }
    }

    /// The SPIFFE ID the control plane must present.
    pub fn get_server_identity(&self) -> &str {
        &self.server_identity
    }

    /// The mesh-tls connector (with ALPN `h2` only).
    pub fn get_connector(&self) -> &TlsConnector {
        &self.connector
    }

    /// Whether [`server_identity`](Self::get_server_identity) is a valid SPIFFE ID.
    pub(crate) fn identity_is_valid(&self) -> bool {
        SpiffeId::new(&self.server_identity).is_ok()
    }
}

/// The first transport error (TLS alert, reset) a connection of one stream attempt saw.
///
/// With TLS 1.3 the server checks our certificate after our side of the handshake is done, so a
/// server refusing it is only heard as an alert on the first read. hyper reports that to the
/// waiting call as "connection closed"; this log keeps the alert so the stream error can name it.
#[derive(Clone, Debug, Default)]
pub(crate) struct TransportLog(Arc<Mutex<Option<String>>>);

impl TransportLog {
    fn record(&self, error: &io::Error) {
        let mut first = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(error_chain(error));
        }
    }

    /// `what` failed with `status`, plus the transport error seen, if any.
    pub(crate) fn explain(&self, what: &str, status: &tonic::Status) -> String {
        let seen = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match seen {
            Some(transport) => format!(
                "{what}: {}; the TLS connection failed: {transport}",
                status.message()
            ),
            None => format!("{what}: {}", error_chain(status)),
        }
    }
}

/// A TLS stream that notes its first read or write error in a [`TransportLog`].
#[derive(Debug)]
pub(crate) struct LoggedStream {
    inner: TlsStream<TcpStream>,
    log: TransportLog,
}

impl LoggedStream {
    fn noted<T>(&self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(error)) = &poll {
            self.log.record(error);
        }
        poll
    }

    /// After a failed write: the peer may have sent an alert before closing (a TLS 1.3 server
    /// refusing our certificate does), which says more than "broken pipe". Read what is already
    /// there, once, and note the alert first. The connection is broken, so data read here is
    /// not missed by anyone.
    fn noted_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(_)) = &poll {
            let mut scratch = [0u8; 512];
            let mut buf = ReadBuf::new(&mut scratch);
            if let Poll::Ready(Err(alert)) = Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                self.log.record(&alert);
            }
        }
        self.noted(poll)
    }
}

impl AsyncRead for LoggedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.noted(poll)
    }
}

impl AsyncWrite for LoggedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.noted_write(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.noted_write(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.noted_write(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A tonic connector (`Service<Uri>`) running mesh-tls's handshake over TCP.
#[derive(Clone, Debug)]
pub(crate) struct ControlPlaneConnector {
    tls: XdsTls,
    log: TransportLog,
}

impl ControlPlaneConnector {
    pub(crate) fn new(tls: &XdsTls, log: TransportLog) -> Self {
        Self {
            tls: tls.clone(),
            log,
        }
    }
}

impl Service<Uri> for ControlPlaneConnector {
    type Response = TokioIo<LoggedStream>;
    type Error = BoxError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tls.connector.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // The connector was polled ready; a clone would not be. Swap it out (both are stateless
        // apart from their shared configuration).
        let fresh = self.tls.connector.clone();
        let mut connector = std::mem::replace(&mut self.tls.connector, fresh);
        let identity = self.tls.server_identity.clone();
        let log = self.log.clone();
        ConnectFuture(Box::pin(async move {
            let addr = resolve(&uri).await?;
            let endpoint = Endpoint::builder(addr).identity(&identity).build()?;
            let inner = connector.call(endpoint).await?;
            Ok(TokioIo::new(LoggedStream { inner, log }))
        }))
    }
}

/// The first address the URI's host resolves to (an IP literal resolves to itself).
async fn resolve(uri: &Uri) -> Result<SocketAddr, BoxError> {
    let host = uri
        .host()
        .ok_or_else(|| format!("the control plane URI {uri} has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address").into())
}

type BoxConnect = Pin<Box<dyn Future<Output = Result<TokioIo<LoggedStream>, BoxError>> + Send>>;

/// The future of [`ControlPlaneConnector`]: resolve, connect, handshake. Boxed: one per stream
/// attempt.
pub(crate) struct ConnectFuture(BoxConnect);

impl Future for ConnectFuture {
    type Output = Result<TokioIo<LoggedStream>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for ConnectFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectFuture").finish_non_exhaustive()
    }
}

/// An error and its causes, outermost first, joined by `": "` (tonic's transport error alone
/// says only "transport error"; the handshake's reason is in its sources).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        // Wrappers often repeat their source's text; print each reason once.
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("transport error")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_chain_names_every_cause_once() {
        let error = Outer(std::io::Error::other(
            "expected server A, the certificate says B",
        ));
        assert_eq!(
            error_chain(&error),
            "transport error: expected server A, the certificate says B"
        );
    }

    #[tokio::test]
    async fn resolve_takes_the_port_or_the_scheme_default() {
        let uri: Uri = "https://127.0.0.1:15012".parse().unwrap();
        assert_eq!(
            resolve(&uri).await.unwrap(),
            "127.0.0.1:15012".parse().unwrap()
        );
        let uri: Uri = "https://[::1]".parse().unwrap();
        assert_eq!(resolve(&uri).await.unwrap(), "[::1]:443".parse().unwrap());
    }
}
