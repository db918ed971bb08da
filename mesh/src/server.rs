//! [`ServerBuilder`]: the documented inbound stack around an application service, served on
//! mesh-core's [`Server`].

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::body::{MapBody, MapBodyLayer};
use mesh_core::error::ErrorResponseLayer;
use mesh_core::server::{Server, ServerConfig, ServerStats};
use mesh_core::{Body, BoxError};
use mesh_observe::{ServerTraceLayer, TraceConfig};
use mesh_retry::limit::{
    ConcurrencyConfig, ConcurrencyLimitLayer, RateLimitConfig, RateLimitLayer,
};
use mesh_tls::TlsAcceptor;
use mesh_tls::authz::{AuthzLayer, AuthzPolicy};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::util::BoxCloneService;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use crate::ServeError;

/// The stack under the error-to-response layer, boxed once per optional layer.
type Inner = BoxCloneService<Request<Incoming>, Response<Body>, BoxError>;

/// Serves an application service behind the inbound stack, in this order:
///
/// ```text
/// mesh-core Server      HTTP/1.1 + HTTP/2, connection limits, graceful drain    `config`
///  → TLS accept         client SVID verified, PeerIdentity on each request      `tls`
///  → ServerTraceLayer   trace context in, span, http.server.request.duration    `trace`
///  → ErrorResponse      failures answered: 403 denied, 503 over the limit, 429 rate limited
///  → AuthzLayer         deny, then allow, then the default                      `authz`
///  → ConcurrencyLimit   requests in the application at once                     `concurrency_limit`
///  → RateLimit          requests per second                                     `rate_limit`
///  → your service (axum Router, tonic server, any tower service)
/// ```
///
/// | setting             | default | why |
/// |---------------------|---------|-----|
/// | `config`            | [`ServerConfig::default`]: 10 000 connections, 30 s idle, 64 KiB request head | mesh-core's bounds against floods of idle or slow clients |
/// | `tls`               | none: plain TCP | with a [`TlsAcceptor`], every connection is mTLS and requests carry the caller's `PeerIdentity` |
/// | `trace`             | [`TraceConfig::new`] | global tracer and meter, W3C propagation |
/// | `authz`             | none: every caller admitted | a policy without `tls` sees every caller as anonymous |
/// | `concurrency_limit` | none | an application that degrades under load should set one |
/// | `rate_limit`        | none | |
///
/// The service is called with `Request<hyper::body::Incoming>` and may answer with any body of
/// [`Bytes`] frames; its errors are answered by mesh-core's error-to-response layer too (a
/// `Timeout` becomes 504 and so on), so a failing handler never closes the connection.
///
/// The service and each optional layer that is set are boxed once (one allocation per request
/// each): a server's per-request cost is dominated by parsing and the application, and one
/// nameable type keeps the builder free of generic stacking.
#[must_use]
pub struct ServerBuilder<S> {
    service: S,
    config: ServerConfig,
    tls: Option<TlsAcceptor>,
    trace: TraceConfig,
    authz: Option<AuthzPolicy>,
    concurrency_limit: Option<ConcurrencyConfig>,
    rate_limit: Option<RateLimitConfig>,
}

impl<S> fmt::Debug for ServerBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .field("authz", &self.authz)
            .field("concurrency_limit", &self.concurrency_limit)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

impl<S, B> ServerBuilder<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// Serves `service` with every default (see the table above).
    pub fn new(service: S) -> Self {
        Self {
            service,
            config: ServerConfig::default(),
            tls: None,
            trace: TraceConfig::new(),
            authz: None,
            concurrency_limit: None,
            rate_limit: None,
        }
    }

    /// mesh-core's server settings (connection limits, timeouts, drain time).
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Accepts mTLS connections with `tls`; without it, plain TCP.
    pub fn tls(mut self, tls: TlsAcceptor) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The trace layer's settings.
    pub fn trace(mut self, trace: TraceConfig) -> Self {
        self.trace = trace;
        self
    }

    /// Who may call, by SPIFFE ID; a denied request is answered `403`.
    pub fn authz(mut self, authz: AuthzPolicy) -> Self {
        self.authz = Some(authz);
        self
    }

    /// At most this many requests in the application at once.
    pub fn concurrency_limit(mut self, limit: ConcurrencyConfig) -> Self {
        self.concurrency_limit = Some(limit);
        self
    }

    /// At most this many requests per second.
    pub fn rate_limit(mut self, limit: RateLimitConfig) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Binds `addr` and [`serve`](Self::serve)s on it.
    ///
    /// # Errors
    ///
    /// [`ServeError::Bind`] when the address cannot be bound, otherwise as
    /// [`serve`](Self::serve).
    pub async fn bind(self, addr: SocketAddr) -> Result<ServerHandle, ServeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        self.serve(listener)
    }

    /// Starts serving on `listener` in a spawned task (so it must be called inside a tokio
    /// runtime) and returns its handle.
    ///
    /// # Errors
    ///
    /// [`ServeError::Config`] naming a limit setting that cannot be used (`concurrency_limit`,
    /// `rate_limit`); [`ServeError::Listener`] when the listener's address cannot be read.
    pub fn serve(self, listener: TcpListener) -> Result<ServerHandle, ServeError> {
        let Self {
            service,
            config,
            tls,
            trace,
            authz,
            concurrency_limit,
            rate_limit,
        } = self;
        let mut inner: Inner =
            BoxCloneService::new(MapBody::new(service).map_err(Into::<BoxError>::into));
        if let Some(limit) = rate_limit {
            let layer =
                RateLimitLayer::new(limit).map_err(|e| crate::error::invalid("rate_limit", e))?;
            inner = boxed(layer.layer(inner));
        }
        if let Some(limit) = concurrency_limit {
            let layer = ConcurrencyLimitLayer::new(limit)
                .map_err(|e| crate::error::invalid("concurrency_limit", e))?;
            inner = boxed(layer.layer(inner));
        }
        if let Some(policy) = authz {
            inner = boxed(AuthzLayer::new(policy).layer(inner));
        }
        let stack: BoxCloneService<Request<Incoming>, Response<Body>, Infallible> =
            BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(MapBodyLayer::new())
                    .layer(ServerTraceLayer::new(trace))
                    .layer(ErrorResponseLayer::new())
                    .service(inner),
            );

        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            // A sent signal and a dropped handle both start the graceful shutdown.
            let _ = stopped.await;
        };
        let server = Server::new(listener).config(config);
        let local_addr = server.local_addr().map_err(ServeError::Listener)?;
        let stats = server.stats();
        let task = match tls {
            Some(tls) => tokio::spawn(server.acceptor(tls).serve_with_shutdown(stack, shutdown)),
            None => tokio::spawn(server.serve_with_shutdown(stack, shutdown)),
        };
        Ok(ServerHandle {
            local_addr,
            stats,
            stop: Some(stop),
            task,
        })
    }
}

fn boxed<T, RB>(service: T) -> Inner
where
    T: Service<Request<Incoming>, Response = Response<RB>> + Clone + Send + 'static,
    T::Future: Send + 'static,
    T::Error: Into<BoxError>,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    BoxCloneService::new(MapBody::new(service).map_err(Into::<BoxError>::into))
}

/// A running server: its address, its counters, and the way to stop it.
///
/// Dropping the handle also starts the graceful shutdown (in the background), so a server never
/// outlives the code that started it by accident; keep the handle for as long as it should serve.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    stats: ServerStats,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl ServerHandle {
    /// The address the server listens on (with port 0, the port the system picked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's live counters (connections, handshake failures …).
    pub fn stats(&self) -> ServerStats {
        self.stats.clone()
    }

    /// Stops accepting, lets requests in flight finish (at most `ServerConfig::drain_timeout`,
    /// 30 s by default), and returns when the server has stopped.
    ///
    /// # Errors
    ///
    /// When the server task failed or panicked.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(e)),
        }
    }
}
