//! [`TlsAcceptor`]: mTLS for mesh-core's server.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Extensions;
use mesh_core::log::LogLimiter;
use mesh_core::server::{Acceptor, CloseHandle, ConnectionInfo};
use mesh_core::{BoxError, PeerIdentity};
use opentelemetry::metrics::Meter;
use rustls::ServerConfig;
use rustls::server::NoServerSessionStorage;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::HandshakeError;
use super::recheck::{LiveConnections, Side};
use super::settings::{default_alpn, versions};
use crate::rotation::{CurrentSvid, IdentitySource, IdentityWatch, WorkloadIdentity};
use crate::verify::spiffe_id_of;
use crate::{Authorizer, SpiffeClientVerifier, SvidVerifier, TrustBundleSet, X509Svid};

/// The TLS side of mesh-core's [`Server`](mesh_core::server::Server): an [`Acceptor`] that runs the
/// handshake presenting this workload's [`X509Svid`], **requires** a client certificate, verifies it
/// with [`SpiffeClientVerifier`], and puts the client's identity in the extensions of every request
/// on the connection: a [`PeerIdentity`] and the parsed [`SpiffeId`](crate::SpiffeId).
///
/// Defaults, each settable: TLS 1.3 only; ALPN `h2` then `http/1.1` (mesh-core's server picks the
/// protocol from the connection preface, so the ALPN answer only informs the client); no session
/// resumption, so every connection is verified against the current bundles; the authorizer accepts
/// every trusted ID; live connections are not re-checked when the bundles change (see
/// [`recheck_connections_on_bundle_change`](Self::recheck_connections_on_bundle_change)).
///
/// Cloning shares the configuration. Handshake failures are [`HandshakeError`]s (boxed); the server
/// counts them and closes only that connection. Each refusal is logged here at `warn`, with the
/// client's address (`peer`), the typed reason ([`HandshakeError::kind`], e.g. `UnknownIssuer`)
/// and the error: at most one line per reason every 10 s
/// ([`DEFAULT_LOG_INTERVAL`](mesh_core::log::DEFAULT_LOG_INTERVAL)), the next one carrying how many
/// were held back (`suppressed`), so a client retrying a bad certificate in a loop cannot flood the
/// log. Clones share that limit. A transport failure mid-handshake (`Io`: a TCP health check, a
/// reset) refuses nothing and is logged at `debug`.
///
/// ```
/// use std::sync::Arc;
/// use mesh_core::server::Server;
/// use mesh_tls::test_ca::TestCa;
/// use mesh_tls::{Authorizer, TlsAcceptor, TrustBundleSet};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ca = TestCa::new("prod.example");
/// let bundles = Arc::new(TrustBundleSet::new().with(ca.trust_domain().clone(), ca.roots())?);
/// let acceptor = TlsAcceptor::new(ca.issue("/ns/orders/sa/api").svid(), bundles)
///     .authorizer(Authorizer::path_prefix(ca.trust_domain().clone(), "/ns/shop"));
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let server = Server::new(listener).acceptor(acceptor);
/// # let _ = server;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TlsAcceptor {
    identity: IdentityWatch,
    verifier: SvidVerifier,
    alpn: Vec<Vec<u8>>,
    allow_tls12: bool,
    recheck: bool,
    meter: Option<Meter>,
    config: Arc<ServerConfig>,
    /// The connections to re-check, when `recheck` is on.
    live: Option<Arc<LiveConnections>>,
    log: LogLimiter,
}

impl TlsAcceptor {
    /// An acceptor presenting `svid` and trusting client SVIDs of `bundles`, with the crate's crypto
    /// provider.
    pub fn new(svid: X509Svid, bundles: Arc<TrustBundleSet>) -> Self {
        Self::from_source(&IdentityWatch::fixed(WorkloadIdentity::new(svid, bundles)))
    }

    /// Like [`new`](Self::new), with the SVID and bundles of a rotating `source`: every handshake
    /// uses the latest ones (see [`rotation`](crate::rotation)).
    pub fn from_source(source: &impl IdentitySource) -> Self {
        let identity = source.watch();
        let verifier = SvidVerifier::watching(identity.clone(), &crate::crypto_provider());
        let alpn = default_alpn();
        let config = server_config(&identity, &verifier, &alpn, false);
        Self {
            identity,
            verifier,
            alpn,
            allow_tls12: false,
            recheck: false,
            meter: None,
            config,
            live: None,
            log: LogLimiter::default(),
        }
    }

    /// Which client IDs may connect (default: every trusted ID).
    pub fn authorizer(mut self, authorizer: Authorizer) -> Self {
        self.verifier = self.verifier.authorizer(authorizer);
        self.rebuild();
        self
    }

    /// The ALPN protocols to accept, most preferred first (default `h2`, `http/1.1`).
    pub fn alpn_protocols(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self.rebuild();
        self
    }

    /// Whether TLS 1.2 may be negotiated (default `false`: TLS 1.3 only).
    pub fn allow_tls12(mut self, allow: bool) -> Self {
        self.allow_tls12 = allow;
        self.rebuild();
        self
    }

    /// Whether to re-check live connections when the trust bundles change (default `false`).
    ///
    /// A TLS session keeps the trust decision of its handshake, so by default a peer whose root
    /// was removed from the bundles keeps its open connections (only new handshakes are refused).
    /// With this on, the acceptor keeps each live connection's peer certificate chain (about 1 to
    /// 2 KB per connection, forgotten at most 30 s after the connection ends) and, whenever the source publishes **different** bundles (a new SVID
    /// with the same bundles does not count), verifies every kept chain against them — as of its
    /// handshake, so a certificate that merely expired since does not count — and asks each
    /// connection that fails to close gracefully through its
    /// [`CloseHandle`]: mesh-core's server lets the requests in progress finish, then closes it
    /// (HTTP/2 `GOAWAY`; HTTP/1.1 after the response in progress). Each close is logged at `info`
    /// with the peer's address and ID, and counted in the `mesh.tls.connections.closed` counter
    /// (attributes `reason` = `bundle_change` and `direction` = `inbound`, recorded at 0 from the
    /// start). [`TlsConnector`](crate::TlsConnector) has the same option for the connections it
    /// makes.
    ///
    /// Off by default because closing connections is disruptive (clients reconnect and their
    /// requests in the meantime may fail over), and most bundle changes only add roots. Turn it on
    /// when removing a root must take effect on open connections too (a compromised CA).
    ///
    /// The re-check runs in a task spawned on the first connection; it ends when every clone of
    /// the acceptor is dropped. Only connections served by a server that honours the
    /// [`CloseHandle`] in the acceptor's extensions (mesh-core's does) are closed.
    pub fn recheck_connections_on_bundle_change(mut self, recheck: bool) -> Self {
        self.recheck = recheck;
        self.rebuild();
        self
    }

    /// Where `mesh.tls.connections.closed` is counted. Default
    /// `opentelemetry::global::meter("mesh-tls")`.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self.rebuild();
        self
    }

    /// The rustls configuration in use, for use outside mesh-core's server (with
    /// `tokio_rustls::TlsAcceptor`, for example).
    pub fn rustls_config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    fn rebuild(&mut self) {
        self.config = server_config(&self.identity, &self.verifier, &self.alpn, self.allow_tls12);
        self.live = LiveConnections::when(
            self.recheck,
            Side::Inbound,
            &self.verifier,
            &self.identity,
            self.meter.as_ref(),
        );
    }
}

fn server_config(
    identity: &IdentityWatch,
    verifier: &SvidVerifier,
    alpn: &[Vec<u8>],
    allow_tls12: bool,
) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(crate::crypto_provider())
        .with_protocol_versions(versions(allow_tls12))
        .expect("the crate's provider supports TLS 1.2 and 1.3")
        .with_client_cert_verifier(Arc::new(SpiffeClientVerifier::new(verifier.clone())))
        .with_cert_resolver(Arc::new(CurrentSvid(identity.clone())));
    config.alpn_protocols = alpn.to_vec();
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Arc::new(config)
}

impl Acceptor for TlsAcceptor {
    type Io = TlsStream<TcpStream>;
    type Future = TlsAcceptFuture;

    fn accept(&self, tcp: TcpStream, info: &ConnectionInfo) -> Self::Future {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.clone());
        let live = self.live.clone();
        let peer = info.peer_addr();
        let log = self.log.clone();
        TlsAcceptFuture(Box::pin(async move {
            let before = live.as_ref().map(|live| live.before_handshake());
            let stream = acceptor.accept(tcp).await.map_err(|error| {
                let error = HandshakeError::from_io(error);
                log_refusal(&log, peer, &error);
                error
            })?;
            let (_, connection) = stream.get_ref();
            // The verifier already accepted this certificate, so reading its ID cannot fail; if it
            // somehow does, the connection is refused rather than served unauthenticated.
            let leaf = connection
                .peer_certificates()
                .and_then(|chain| chain.first())
                .ok_or(HandshakeError::Svid(crate::SvidError::NoUriSan))?;
            let id = spiffe_id_of(leaf).map_err(HandshakeError::Svid)?;
            let mut extensions = Extensions::new();
            extensions.insert(PeerIdentity::new(id.to_identity()));
            if let (Some(live), Some(before)) = (live, before) {
                let close = CloseHandle::new();
                let chain = connection.peer_certificates().unwrap_or_default().to_vec();
                // A refusal here (bundles changed during the handshake) asks the server to
                // close the connection gracefully, as a re-check would; it is logged there.
                let _ = live.track(chain, id.clone(), peer, close.clone(), &before);
                extensions.insert(close);
            }
            extensions.insert(id);
            Ok((stream, extensions))
        }))
    }
}

/// The `warn` line of a refused handshake, rate-limited per reason.
fn log_refusal(log: &LogLimiter, peer: std::net::SocketAddr, error: &HandshakeError) {
    let reason = error.kind();
    if let HandshakeError::Io(_) = error {
        // The client went away (a TCP health check, a reset): nothing was refused.
        tracing::debug!(%peer, reason, %error, "TLS handshake cut short");
    } else if let Some(suppressed) = log.check(reason) {
        tracing::warn!(%peer, reason, %error, suppressed, "refused a TLS handshake");
    }
}

type BoxAccept =
    Pin<Box<dyn Future<Output = Result<(TlsStream<TcpStream>, Extensions), BoxError>> + Send>>;

/// The future of [`TlsAcceptor`]: the handshake. Boxed, as it runs once per connection.
pub struct TlsAcceptFuture(BoxAccept);

impl Future for TlsAcceptFuture {
    type Output = Result<(TlsStream<TcpStream>, Extensions), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for TlsAcceptFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptFuture").finish_non_exhaustive()
    }
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("identity", &self.identity)
            .field("verifier", &self.verifier)
            .field("alpn", &self.alpn)
            .field("allow_tls12", &self.allow_tls12)
            .field("recheck_connections_on_bundle_change", &self.recheck)
            .finish_non_exhaustive()
    }
}
