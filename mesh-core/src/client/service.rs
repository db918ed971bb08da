//! [`HttpClient`]: the `tower::Service` that sends requests to one endpoint.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use tower_service::Service;

use super::config::{ClientConfig, Protocol};
use super::connect::{Connect, ConnectionCount, Dialer};
use super::future::ResponseFuture;
use super::http1::{Http1Pool, Reservation, Reserved, exhausted};
use super::http2::Http2Connection;
use super::request::{prepare_http1, prepare_http2};
use super::request_body::SentBody;
use crate::Endpoint;
use crate::error::BoxError;

/// Sends HTTP requests to one [`Endpoint`] over HTTP/1.1 or HTTP/2 (see the [module docs](super)).
///
/// `B` is the request body type, [`mesh_core::Body`](crate::Body) unless chosen otherwise. Like
/// hyper's HTTP/2 client, it must be `Unpin`; box a body that is not. Under mesh-retry's retry
/// layer the body is its `ReplayBody<B>` (so `HttpClient<ReplayBody<Body>>`); the `towermesh`
/// facade's `ClientBuilder` picks that type itself, so its users never name it.
///
/// # Readiness and clones
///
/// All clones share the endpoint's connections. Each clone keeps its own readiness: with HTTP/1.1,
/// `poll_ready` reserves one of the `max_connections` slots and returns `Pending` while all are busy;
/// `call` uses the reservation. A clone starts without a reservation, and dropping a client (or the
/// response future) releases the one it holds. With HTTP/2, `poll_ready` is always ready: requests
/// beyond the server's stream limit wait inside the connection.
///
/// The HTTP/1.1 wait is bounded by [`pool_wait_timeout`](ClientConfig::pool_wait_timeout): when no
/// slot came free in that time, `poll_ready` returns `Ready(Ok)` all the same and `call` fails at
/// once with [`PoolExhausted`](crate::error::PoolExhausted), without sending anything. Later
/// `poll_ready` calls then take that shortcut without waiting, until a slot has been taken again. A
/// balancer thus routes around a saturated endpoint while it waits, and a caller gets a typed
/// `PoolExhausted` rather than an endpoint that looks gone. A clone that gave up looks for a free
/// slot again on its next `poll_ready`.
///
/// # Panics
///
/// With HTTP/1.1, `call` panics if `poll_ready` has not returned `Ready(Ok)` first, as tower requires.
/// Connections are driven by tasks spawned with `tokio::spawn`, so requests must be sent from within a
/// tokio runtime. With HTTP/1.1, `poll_ready` also needs a runtime (with time enabled) once every
/// slot is busy, to time the wait.
pub struct HttpClient<B = crate::Body> {
    shared: Arc<Shared<B>>,
    reservation: Reservation,
}

struct Shared<B> {
    endpoint: Endpoint,
    transport: Transport<B>,
    open: Arc<ConnectionCount>,
}

enum Transport<B> {
    Http1(Arc<Http1Pool<SentBody<B>>>),
    Http2(Arc<Http2Connection<SentBody<B>>>),
}

impl<B> HttpClient<B>
where
    B: HttpBody + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// A client for `endpoint` that opens its transports with `connector` (for example
    /// [`TcpConnector`](super::TcpConnector)).
    ///
    /// Nothing is connected until the first request.
    pub fn new<C: Connect>(endpoint: Endpoint, connector: C, config: ClientConfig) -> Self {
        let open = Arc::new(ConnectionCount::default());
        let dialer = Box::new(Dialer::new(
            connector,
            endpoint.clone(),
            &config,
            open.clone(),
        ));
        let transport = match config.protocol {
            Protocol::Http1 => Transport::Http1(Arc::new(Http1Pool::new(
                config.effective_max_connections(),
                config.pool_wait_timeout,
                config.idle_timeout,
                dialer,
            ))),
            Protocol::Http2 => Transport::Http2(Arc::new(Http2Connection::new(dialer))),
        };
        Self {
            shared: Arc::new(Shared {
                endpoint,
                transport,
                open,
            }),
            reservation: Reservation::default(),
        }
    }
}

impl<B> HttpClient<B> {
    /// The endpoint this client sends to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.shared.endpoint
    }

    /// The HTTP version this client speaks.
    pub fn protocol(&self) -> Protocol {
        match self.shared.transport {
            Transport::Http1(_) => Protocol::Http1,
            Transport::Http2(_) => Protocol::Http2,
        }
    }

    /// Connections of this client (and its clones) that are open now, busy or idle. A connection
    /// stops counting when its task ends, before its transport is dropped.
    pub fn open_connections(&self) -> usize {
        self.shared.open.get()
    }

    /// HTTP/1.1 connections waiting in the pool for their next request (always 0 for HTTP/2).
    /// Connections the server closed may still be counted until the pool is next used.
    pub fn idle_connections(&self) -> usize {
        match &self.shared.transport {
            Transport::Http1(pool) => pool.idle_count(),
            Transport::Http2(_) => 0,
        }
    }

    /// HTTP/1.1 connections listed as on their way back to the pool.
    #[cfg(test)]
    pub(crate) fn returning_connections(&self) -> usize {
        match &self.shared.transport {
            Transport::Http1(pool) => pool.returning_count(),
            Transport::Http2(_) => 0,
        }
    }
}

impl<B> Clone for HttpClient<B> {
    /// A handle on the same connections, without the original's reservation.
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            reservation: Reservation::default(),
        }
    }
}

impl<B> fmt::Debug for HttpClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("endpoint", &self.shared.endpoint)
            .field("protocol", &self.protocol())
            .field("open_connections", &self.open_connections())
            .field("reserved", &self.reservation.has_slot())
            .finish()
    }
}

impl<B> Service<Request<B>> for HttpClient<B>
where
    B: HttpBody + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = ResponseFuture<B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match &self.shared.transport {
            Transport::Http1(pool) => self.reservation.poll_acquire(pool.slots(), cx),
            Transport::Http2(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let endpoint = &self.shared.endpoint;
        match &self.shared.transport {
            Transport::Http1(pool) => {
                let permit = match self
                    .reservation
                    .take()
                    .expect("poll_ready must be called first")
                {
                    Reserved::Slot(permit) => permit,
                    Reserved::Exhausted => return ResponseFuture::failed(exhausted()),
                };
                match prepare_http1(&mut request, endpoint) {
                    Ok(()) => {
                        ResponseFuture::http1(pool.exchange(request.map(SentBody::new), permit))
                    }
                    Err(error) => ResponseFuture::failed(error),
                }
            }
            Transport::Http2(connection) => match prepare_http2(&mut request, endpoint) {
                Ok(()) => {
                    let (parts, body) = request.into_parts();
                    let (body, failure) = SentBody::with_slot(body);
                    let request = Request::from_parts(parts, body);
                    ResponseFuture::http2(connection.exchange(request, failure))
                }
                Err(error) => ResponseFuture::failed(error),
            },
        }
    }
}
