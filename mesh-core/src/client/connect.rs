//! Transports: the [`Connect`] bound, the plain-TCP [`TcpConnector`], and the dialer that turns a
//! connector into ready hyper connections.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::Body as HttpBody;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tower::ServiceExt;
use tower_service::Service;

use super::config::{ClientConfig, HTTP2_KEEP_ALIVE_TIMEOUT};
use super::http1::{ConnShared, Driven, Http1Sender};
use crate::Endpoint;
use crate::error::{BoxError, ConnectError, Timeout};
use crate::server::{CloseHandle, FinishOnDrop};

tokio::task_local! {
    /// The handle of the connection being made, while its connector runs.
    static DIALING: CloseHandle;
}

/// The [`CloseHandle`] of the connection an [`HttpClient`](super::HttpClient) is making, when
/// called by a connector while the client drives it (in `Service::call` or in its future); `None`
/// anywhere else.
///
/// This is how a connector learns to retire, later, a connection it made: `mesh-tls` keeps the
/// handle next to the server's certificate chain and closes it when new trust bundles no longer
/// verify that chain. Once the handle is closed the client sends no new request on the
/// connection; requests in progress finish (with HTTP/1.1 the response being read is the last one;
/// with HTTP/2 the streams open carry on), then the client drops the connection. A retired
/// connection that sits idle is dropped the next time the client looks for a connection (HTTP/1.1
/// also drops it at the next return of another connection); it carries no request meanwhile.
///
/// The handle is passed through a tokio task-local value around the connector's future rather
/// than through the [`Connect`] bound, so every existing connector keeps working unchanged; the
/// price is that a connector which hands its work to another task must fetch the handle before it
/// does. [`CloseHandle::is_finished`] turns true when the client's connection task ends.
///
/// ```
/// use mesh_core::client::connection_close_handle;
///
/// // Outside a client's connect attempt there is no connection to retire.
/// assert!(connection_close_handle().is_none());
/// ```
pub fn connection_close_handle() -> Option<CloseHandle> {
    DIALING.try_with(CloseHandle::clone).ok()
}

/// A new connection: hyper's sender, and the handle that retires it (see
/// [`connection_close_handle`]).
pub(crate) struct Dialed<S> {
    pub(crate) sender: S,
    pub(crate) close: CloseHandle,
}

impl<S> Dialed<S> {
    /// Whether the connection was retired through its [`CloseHandle`].
    pub(crate) fn is_retired(&self) -> bool {
        self.close.is_close_requested()
    }
}

/// A boxed, sendable future; used only where a new connection is made, never per request.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Anything that can open a transport to an [`Endpoint`]: a `tower::Service<Endpoint>` whose response is
/// a tokio IO object.
///
/// This is a shorthand for bounds, implemented for every service that fits; there is nothing to
/// implement by hand. [`TcpConnector`] is the plaintext one; `mesh-tls` wraps a connector to add TLS.
///
/// The client clones the connector for each new connection and drives the clone with
/// [`ServiceExt::oneshot`], so a connector that is not ready is waited on, never called unready.
/// Whatever the connector fails with becomes a [`ConnectError`] (unless it already is one).
pub trait Connect:
    Service<
        Endpoint,
        Response = <Self as Connect>::Io,
        Error = <Self as Connect>::Failure,
        Future = <Self as Connect>::Connecting,
    > + Clone
    + Send
    + 'static
{
    /// The connected transport.
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// Why a connection could not be made.
    type Failure: Into<BoxError>;
    /// The connector's future.
    type Connecting: Future<Output = Result<Self::Io, Self::Failure>> + Send + 'static;
}

impl<S> Connect for S
where
    S: Service<Endpoint> + Clone + Send + 'static,
    S::Response: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Io = S::Response;
    type Failure = S::Error;
    type Connecting = S::Future;
}

/// Opens plain TCP connections to [`Endpoint::addr`], with `TCP_NODELAY` set.
///
/// Nagle's algorithm is turned off because HTTP writes whole messages and waits for answers: delaying
/// small writes only adds latency. Cloning is free; the connector holds no state.
#[derive(Clone, Debug, Default)]
pub struct TcpConnector {
    _private: (),
}

impl TcpConnector {
    /// The connector.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Service<Endpoint> for TcpConnector {
    type Response = TcpStream;
    type Error = io::Error;
    type Future = TcpConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, endpoint: Endpoint) -> Self::Future {
        let addr = endpoint.addr();
        TcpConnectFuture(Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        }))
    }
}

/// The future of [`TcpConnector`]. Boxed inside, since it runs once per connection, not per request.
pub struct TcpConnectFuture(BoxFuture<io::Result<TcpStream>>);

impl Future for TcpConnectFuture {
    type Output = io::Result<TcpStream>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for TcpConnectFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpConnectFuture").finish_non_exhaustive()
    }
}

/// Opens one new connection of a given kind (`S` is hyper's `SendRequest` for HTTP/1.1 or HTTP/2).
///
/// Object-safe so that the client's type does not carry the connector's type.
pub(crate) trait Dial<S>: Send + Sync {
    fn dial(&self) -> BoxFuture<Result<Dialed<S>, ConnectError>>;
}

/// Counts connections whose task is running; one [`OpenConnection`] guard per connection.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCount(AtomicUsize);

impl ConnectionCount {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Held by a connection task while it runs.
struct OpenConnection(Arc<ConnectionCount>);

impl OpenConnection {
    fn new(count: &Arc<ConnectionCount>) -> Self {
        count.0.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connector plus everything needed to turn its IO into a running hyper connection.
pub(crate) struct Dialer<C> {
    /// Behind a mutex only so that `Dialer` is `Sync` for any `Send` connector; it is locked just long
    /// enough to clone the connector.
    connector: Mutex<C>,
    endpoint: Endpoint,
    connect_timeout: Duration,
    http2_keep_alive_interval: Option<Duration>,
    open: Arc<ConnectionCount>,
}

impl<C: Connect> Dialer<C> {
    pub(crate) fn new(
        connector: C,
        endpoint: Endpoint,
        config: &ClientConfig,
        open: Arc<ConnectionCount>,
    ) -> Self {
        Self {
            connector: Mutex::new(connector),
            endpoint,
            connect_timeout: config.connect_timeout,
            http2_keep_alive_interval: config.http2_keep_alive_interval,
            open,
        }
    }

    /// Runs `handshake` on a fresh transport, all within the connect timeout.
    fn dial_with<S, F, Fut>(&self, handshake: F) -> BoxFuture<Result<Dialed<S>, ConnectError>>
    where
        S: Send + 'static,
        F: FnOnce(TokioIo<C::Io>, Connection) -> Fut + Send + 'static,
        Fut: Future<Output = Result<S, BoxError>> + Send,
    {
        let connector = self
            .connector
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let endpoint = self.endpoint.clone();
        let limit = self.connect_timeout;
        let open = self.open.clone();
        Box::pin(async move {
            let close = CloseHandle::new();
            let connection = Connection {
                open,
                close: close.clone(),
            };
            let dialing = DIALING.scope(close.clone(), connector.oneshot(endpoint));
            let connect = async move {
                let io = dialing.await.map_err(Into::into)?;
                handshake(TokioIo::new(io), connection).await
            };
            match tokio::time::timeout(limit, connect).await {
                Ok(Ok(sender)) => Ok(Dialed { sender, close }),
                Ok(Err(error)) => Err(into_connect_error(error)),
                Err(_elapsed) => Err(ConnectError::new(Timeout::new())),
            }
        })
    }
}

/// What a connection task holds while it runs: its place in the open count and its close handle
/// (marked finished when the task ends).
pub(crate) struct Connection {
    open: Arc<ConnectionCount>,
    close: CloseHandle,
}

impl Connection {
    fn guard(&self) -> (OpenConnection, FinishOnDrop) {
        (
            OpenConnection::new(&self.open),
            FinishOnDrop(self.close.clone()),
        )
    }
}

/// Keeps a connector's own `ConnectError` as it is instead of wrapping it twice.
fn into_connect_error(error: BoxError) -> ConnectError {
    match error.downcast::<ConnectError>() {
        Ok(error) => *error,
        Err(other) => ConnectError::new(other),
    }
}

impl<C, B> Dial<Http1Sender<B>> for Dialer<C>
where
    C: Connect,
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn dial(&self) -> BoxFuture<Result<Dialed<Http1Sender<B>>, ConnectError>> {
        self.dial_with(|io, open| async move {
            let (sender, connection) = http1::handshake(io).await?;
            // With upgrades, `hyper::upgrade::on(response)` works for a 101 answer or a `CONNECT`
            // tunnel; the upgraded connection then leaves the pool (its sender reports closed).
            // The connection's task also returns it to the pool after each response.
            let shared = ConnShared::new();
            let driven = Driven::new(connection.with_upgrades(), shared.clone());
            tokio::spawn(drive(driven, open.guard()));
            Ok(Http1Sender::new(sender, shared))
        })
    }
}

impl<C, B> Dial<http2::SendRequest<B>> for Dialer<C>
where
    C: Connect,
    B: HttpBody + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn dial(&self) -> BoxFuture<Result<Dialed<http2::SendRequest<B>>, ConnectError>> {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new());
        if let Some(interval) = self.http2_keep_alive_interval {
            builder
                .keep_alive_interval(interval)
                .keep_alive_timeout(HTTP2_KEEP_ALIVE_TIMEOUT)
                .keep_alive_while_idle(true);
        }
        self.dial_with(move |io, open| async move {
            let (sender, connection) = builder.handshake(io).await?;
            tokio::spawn(drive(connection, open.guard()));
            Ok(sender)
        })
    }
}

/// A connection task: runs hyper's connection until it closes.
///
/// The guards (open count, close handle) are released before the connection (and with it the
/// transport) is dropped, so whoever sees the transport closed also sees the count lowered.
async fn drive<F>(connection: F, guard: (OpenConnection, FinishOnDrop))
where
    F: Future<Output = Result<(), hyper::Error>>,
{
    let mut connection = std::pin::pin!(connection);
    // What this poll does for the requests on the connection (a response's arrival, the pool's
    // check-in) shares one clock reading.
    let polled = std::future::poll_fn(|cx| {
        let _clock = crate::time::PollClock::enter();
        connection.as_mut().poll(cx)
    });
    if let Err(error) = polled.await {
        tracing::debug!(%error, "HTTP connection closed with an error");
    }
    drop(guard);
}
