//! [`HttpClient`]: the `tower::Service` that sends requests to one endpoint.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tower_service::Service;

use super::config::{ClientConfig, Protocol};
use super::connect::{Connect, ConnectionCount, Dialer};
use super::future::ResponseFuture;
use super::http1::Http1Pool;
use super::http2::Http2Connection;
use super::request::{prepare_http1, prepare_http2};
use crate::Endpoint;
use crate::error::BoxError;

/// Sends HTTP requests to one [`Endpoint`] over HTTP/1.1 or HTTP/2 (see the [module docs](super)).
///
/// `B` is the request body type, [`mesh_core::Body`](crate::Body) unless chosen otherwise. Like
/// hyper's HTTP/2 client, it must be `Unpin`; box a body that is not.
///
/// # Readiness and clones
///
/// All clones share the endpoint's connections. Each clone keeps its own readiness: with HTTP/1.1,
/// `poll_ready` reserves one of the `max_connections` slots and returns `Pending` while all are busy;
/// `call` uses the reservation. A clone starts without a reservation, and dropping a client (or the
/// response future) releases the one it holds. With HTTP/2, `poll_ready` is always ready: requests
/// beyond the server's stream limit wait inside the connection.
///
/// # Panics
///
/// With HTTP/1.1, `call` panics if `poll_ready` has not returned `Ready(Ok)` first, as tower requires.
/// Connections are driven by tasks spawned with `tokio::spawn`, so requests must be sent from within a
/// tokio runtime.
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
    Http1(Arc<Http1Pool<B>>),
    Http2(Arc<Http2Connection<B>>),
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
            .field("reserved", &self.reservation.permit.is_some())
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
            Transport::Http1(pool) => self.reservation.poll_acquire(pool.permits(), cx),
            Transport::Http2(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let endpoint = &self.shared.endpoint;
        match &self.shared.transport {
            Transport::Http1(pool) => {
                let permit = self
                    .reservation
                    .permit
                    .take()
                    .expect("poll_ready must be called first");
                match prepare_http1(&mut request, endpoint) {
                    Ok(()) => ResponseFuture::http1(pool.exchange(request, permit)),
                    Err(error) => ResponseFuture::failed(error),
                }
            }
            Transport::Http2(connection) => match prepare_http2(&mut request, endpoint) {
                Ok(()) => ResponseFuture::http2(connection.exchange(request)),
                Err(error) => ResponseFuture::failed(error),
            },
        }
    }
}

/// One clone's reserved HTTP/1.1 slot, or its place in the queue for one.
#[derive(Default)]
struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    /// Boxed, but only while every slot is busy: the common case takes a permit without waiting.
    /// `Sync` so that the client is `Sync` too, as some frameworks ask of services.
    waiting: Option<AcquireFuture>,
}

impl Reservation {
    fn poll_acquire(
        &mut self,
        permits: &Arc<Semaphore>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), BoxError>> {
        if self.permit.is_some() {
            return Poll::Ready(Ok(()));
        }
        let waiting = match &mut self.waiting {
            Some(waiting) => waiting,
            None => match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    self.permit = Some(permit);
                    return Poll::Ready(Ok(()));
                }
                Err(TryAcquireError::NoPermits) => self
                    .waiting
                    .insert(Box::pin(permits.clone().acquire_owned())),
                Err(TryAcquireError::Closed) => return Poll::Ready(Err(pool_closed())),
            },
        };
        let acquired = std::task::ready!(waiting.as_mut().poll(cx));
        self.waiting = None;
        match acquired {
            Ok(permit) => {
                self.permit = Some(permit);
                Poll::Ready(Ok(()))
            }
            Err(_closed) => Poll::Ready(Err(pool_closed())),
        }
    }
}

type AcquireFuture =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send + Sync>>;

/// The pool's semaphore is never closed; this only avoids a panic should that change.
fn pool_closed() -> BoxError {
    "HTTP/1.1 connection pool closed".into()
}
