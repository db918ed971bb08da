//! [`TlsConnector`]: mTLS on top of any mesh-core connector.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use mesh_core::client::{TcpConnector, connection_close_handle};
use mesh_core::{BoxError, Endpoint};
use opentelemetry::metrics::Meter;
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tower_service::Service;

use super::HandshakeError;
use super::recheck::{LiveConnections, Side};
use super::settings::{default_alpn, versions};
use crate::rotation::{CurrentSvid, IdentitySource, IdentityWatch, WorkloadIdentity};
use crate::verify::spiffe_id_of;
use crate::{Authorizer, SpiffeId, SpiffeServerVerifier, SvidVerifier, TrustBundleSet, X509Svid};

/// Opens mutual-TLS connections for mesh-core's [`HttpClient`](mesh_core::client::HttpClient): a
/// `Service<Endpoint>` that connects with the inner connector `C` (plain TCP by default), then runs
/// the TLS handshake presenting this workload's [`X509Svid`].
///
/// The server must prove the endpoint's expected identity ([`Endpoint::identity`]): its SVID is
/// verified with [`SpiffeServerVerifier`] against the bundle of its own trust domain and must carry
/// exactly that SPIFFE ID. The TLS server name (the address dialled) plays no part. An endpoint
/// without an expected identity is refused with [`HandshakeError::MissingEndpointIdentity`] unless
/// [`require_endpoint_identity(false)`](Self::require_endpoint_identity), in which case any server the
/// [`Authorizer`] accepts will do.
///
/// Defaults, each settable: TLS 1.3 only; ALPN `h2` then `http/1.1`; no session resumption (a
/// resumed session would skip the identity check of the new endpoint and the current bundles); the
/// authorizer accepts every trusted ID; connections already made are not re-checked when the
/// bundles change (see
/// [`recheck_connections_on_bundle_change`](Self::recheck_connections_on_bundle_change)).
///
/// Cloning shares the configuration. The future is boxed: it runs once per connection.
///
/// ```
/// use std::sync::Arc;
/// use mesh_core::client::{ClientConfig, HttpClient};
/// use mesh_core::{Body, Endpoint};
/// use mesh_tls::test_ca::TestCa;
/// use mesh_tls::{TlsConnector, TrustBundleSet};
///
/// let ca = TestCa::new("prod.example");
/// let bundles = Arc::new(TrustBundleSet::new().with(ca.trust_domain().clone(), ca.roots())?);
/// let connector = TlsConnector::new(ca.issue("/ns/shop/sa/web").svid(), bundles);
///
/// let endpoint = Endpoint::builder("127.0.0.1:8443".parse()?)
///     .identity("spiffe://prod.example/ns/orders/sa/api")
///     .build()?;
/// let client = HttpClient::<Body>::new(endpoint, connector, ClientConfig::default());
/// # let _ = client;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TlsConnector<C = TcpConnector> {
    inner: C,
    identity: IdentityWatch,
    verifier: SvidVerifier,
    alpn: Vec<Vec<u8>>,
    allow_tls12: bool,
    require_identity: bool,
    recheck: bool,
    meter: Option<Meter>,
    /// Built from the fields above by every setter; cloned per connection to set the expected ID.
    config: Arc<ClientConfig>,
    /// The connections to re-check, when `recheck` is on.
    live: Option<Arc<LiveConnections>>,
}

impl TlsConnector<TcpConnector> {
    /// A connector over plain TCP presenting `svid` and trusting `bundles`, with the crate's crypto
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
        let config = client_config(&identity, &verifier, &alpn, false);
        Self {
            inner: TcpConnector::new(),
            identity,
            verifier,
            alpn,
            allow_tls12: false,
            require_identity: true,
            recheck: false,
            meter: None,
            config,
            live: None,
        }
    }
}

impl<C> TlsConnector<C> {
    /// Connects with `inner` (any `Service<Endpoint>` returning an IO) instead.
    pub fn connector<D>(self, inner: D) -> TlsConnector<D> {
        TlsConnector {
            inner,
            identity: self.identity,
            verifier: self.verifier,
            alpn: self.alpn,
            allow_tls12: self.allow_tls12,
            require_identity: self.require_identity,
            recheck: self.recheck,
            meter: self.meter,
            config: self.config,
            live: self.live,
        }
    }

    /// Which server IDs are acceptable beyond the endpoint's expected one (default: every trusted ID).
    pub fn authorizer(mut self, authorizer: Authorizer) -> Self {
        self.verifier = self.verifier.authorizer(authorizer);
        self.rebuild();
        self
    }

    /// The ALPN protocols to offer, most preferred first (default `h2`, `http/1.1`).
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

    /// Whether endpoints must have an expected identity (default `true`).
    pub fn require_endpoint_identity(mut self, require: bool) -> Self {
        self.require_identity = require;
        self
    }

    /// Whether to re-check the connections this connector made when the trust bundles change
    /// (default `false`).
    ///
    /// The outbound twin of
    /// [`TlsAcceptor::recheck_connections_on_bundle_change`](crate::TlsAcceptor::recheck_connections_on_bundle_change):
    /// a TLS session keeps the trust decision of its handshake, so by default a pooled connection
    /// to a server whose root was removed from the bundles keeps carrying requests. With this on,
    /// the connector keeps the server's certificate chain of each connection it makes for
    /// mesh-core's [`HttpClient`](mesh_core::client::HttpClient) (about 1 to 2 KB per
    /// connection, forgotten at most 30 s after it ends) with the connection's
    /// [`CloseHandle`](mesh_core::server::CloseHandle)
    /// (from [`connection_close_handle`]); whenever the source publishes **different** bundles, it
    /// verifies every kept chain against them (as of its handshake, so a certificate that merely
    /// expired since does not count) and retires each connection whose chain fails: the client
    /// sends no new request on it, the requests in progress finish, and the next request to that
    /// endpoint makes a new connection, whose handshake then fails with a [`HandshakeError`] if
    /// the server is still not trusted. Connections to servers still trusted are kept. Each
    /// retirement is logged at `info` with the endpoint's address and the server's ID, and counted
    /// in `mesh.tls.connections.closed` (attributes `reason` = `bundle_change`, `direction` =
    /// `outbound`, recorded at 0 from the start). A handshake that was under way while the bundles
    /// changed is checked against the new ones as it ends, and fails with a [`HandshakeError`]
    /// if they refuse the server.
    ///
    /// Each connection is judged by its own chain rather than all being dropped at every bundle
    /// change, so adding a root (the common change) costs no reconnection. Off by default for the
    /// same reason as the acceptor's: turn it on when removing a root must take effect on open
    /// connections too. Connections made outside an `HttpClient` (calling the connector directly)
    /// have no handle and are not tracked. The re-check runs in a task spawned on the first
    /// connection; it ends when every clone of the connector is dropped.
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

    /// The inner connector.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The inner connector, mutably.
    pub fn get_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// Gives the inner connector back.
    pub fn into_inner(self) -> C {
        self.inner
    }

    fn rebuild(&mut self) {
        self.config = client_config(&self.identity, &self.verifier, &self.alpn, self.allow_tls12);
        self.live = LiveConnections::when(
            self.recheck,
            Side::Outbound,
            &self.verifier,
            &self.identity,
            self.meter.as_ref(),
        );
    }

    /// The client configuration for one connection to `endpoint`.
    fn config_for(&self, endpoint: &Endpoint) -> Result<Arc<ClientConfig>, HandshakeError> {
        let Some(identity) = endpoint.identity() else {
            return match self.require_identity {
                true => Err(HandshakeError::MissingEndpointIdentity),
                false => Ok(self.config.clone()),
            };
        };
        let expected =
            SpiffeId::try_from(identity).map_err(HandshakeError::InvalidEndpointIdentity)?;
        let verifier = SpiffeServerVerifier::new(self.verifier.clone()).expecting(expected);
        let mut config = (*self.config).clone();
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(verifier));
        Ok(Arc::new(config))
    }
}

/// The rustls client configuration without an expected server ID.
fn client_config(
    identity: &IdentityWatch,
    verifier: &SvidVerifier,
    alpn: &[Vec<u8>],
    allow_tls12: bool,
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(crate::crypto_provider())
        .with_protocol_versions(versions(allow_tls12))
        .expect("the crate's provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier::new(verifier.clone())))
        .with_client_cert_resolver(Arc::new(CurrentSvid(identity.clone())));
    config.alpn_protocols = alpn.to_vec();
    config.resumption = Resumption::disabled();
    config.enable_sni = false;
    Arc::new(config)
}

impl<C> Service<Endpoint> for TlsConnector<C>
where
    C: Service<Endpoint>,
    C::Response: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = TlsStream<C::Response>;
    type Error = BoxError;
    type Future = TlsConnectFuture<C::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, endpoint: Endpoint) -> Self::Future {
        let config = match self.config_for(&endpoint) {
            Ok(config) => config,
            Err(error) => return TlsConnectFuture(Box::pin(async move { Err(error.into()) })),
        };
        let server_name = ServerName::IpAddress(endpoint.addr().ip().into());
        let peer = endpoint.addr();
        // Taken here, in `call`: the handle is only visible while the client drives the connector.
        let tracking = self
            .live
            .clone()
            .and_then(|live| Some((connection_close_handle()?, live)));
        let connecting = self.inner.call(endpoint);
        TlsConnectFuture(Box::pin(async move {
            let before = tracking.as_ref().map(|(_, live)| live.before_handshake());
            let io = connecting.await.map_err(Into::into)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(server_name, io)
                .await
                .map_err(HandshakeError::from_io)?;
            if let (Some((close, live)), Some(before)) = (tracking, before) {
                let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
                // The verifier accepted this chain, so it has a leaf with an ID.
                if let Some(id) = chain.first().and_then(|leaf| spiffe_id_of(leaf).ok()) {
                    // Bundles that changed during the handshake and refuse this server: the
                    // connection is refused now, rather than used once and retired.
                    live.track(chain.to_vec(), id, peer, close, &before)
                        .map_err(HandshakeError::Svid)?;
                }
            }
            Ok(stream)
        }))
    }
}

type BoxConnect<Io> = Pin<Box<dyn Future<Output = Result<TlsStream<Io>, BoxError>> + Send>>;

/// The future of [`TlsConnector`]: connect, then handshake. Boxed, as it runs once per connection.
pub struct TlsConnectFuture<Io>(BoxConnect<Io>);

impl<Io> Future for TlsConnectFuture<Io> {
    type Output = Result<TlsStream<Io>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl<Io> fmt::Debug for TlsConnectFuture<Io> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnectFuture").finish_non_exhaustive()
    }
}

impl<C: fmt::Debug> fmt::Debug for TlsConnector<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("inner", &self.inner)
            .field("identity", &self.identity)
            .field("verifier", &self.verifier)
            .field("alpn", &self.alpn)
            .field("allow_tls12", &self.allow_tls12)
            .field("require_endpoint_identity", &self.require_identity)
            .field("recheck_connections_on_bundle_change", &self.recheck)
            .finish_non_exhaustive()
    }
}
