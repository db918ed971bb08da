//! HTTP/1.1: a bounded pool of keep-alive connections, and the exchange of one request on it.
//!
//! Invariants:
//! - a request in flight holds one semaphore permit from `poll_ready` until its connection is idle
//!   again (response body fully read) or gone, so at most `max_connections` connections are busy;
//! - a new connection is opened only when no idle one is usable, and a connection enters the idle list
//!   before its permit is released, so busy + idle never exceeds `max_connections` (short of
//!   connections already closing);
//! - only connections whose `SendRequest::ready()` resolved are idle, so any idle connection can take
//!   a request at once unless the server closed it meanwhile.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1::SendRequest};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::connect::{BoxFuture, Dial};
use crate::error::{BoxError, UpstreamError};

type SendFuture<B> = BoxFuture<Result<Response<Incoming>, TrySendError<Request<B>>>>;

/// The HTTP/1.1 connections of one client and all its clones.
pub(crate) struct Http1Pool<B> {
    idle: Mutex<Vec<IdleConnection<B>>>,
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
    dialer: Box<dyn Dial<SendRequest<B>>>,
}

struct IdleConnection<B> {
    sender: SendRequest<B>,
    since: Instant,
}

impl<B> IdleConnection<B> {
    /// Whether the connection can take a request: not closed by the server, not idle for too long.
    fn is_usable(&self, now: Instant, idle_timeout: Duration) -> bool {
        !self.sender.is_closed()
            && self.sender.is_ready()
            && now.saturating_duration_since(self.since) <= idle_timeout
    }
}

impl<B> Http1Pool<B> {
    pub(crate) fn new(
        max_connections: usize,
        idle_timeout: Duration,
        dialer: Box<dyn Dial<SendRequest<B>>>,
    ) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max_connections)),
            idle_timeout,
            dialer,
        }
    }

    /// The semaphore whose permits bound the requests (and so the connections) in flight.
    pub(crate) fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    /// How many connections sit idle, usable or not yet found stale.
    pub(crate) fn idle_count(&self) -> usize {
        self.lock_idle().len()
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<IdleConnection<B>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used usable idle connection; stale ones met on the way are closed.
    ///
    /// Most recent first keeps the set of warm connections small, so surplus ones age out.
    fn checkout(&self) -> Option<SendRequest<B>> {
        let now = Instant::now();
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.lock_idle();
            loop {
                match idle.pop() {
                    Some(conn) if conn.is_usable(now, self.idle_timeout) => break Some(conn.sender),
                    Some(conn) => stale.push(conn),
                    None => break None,
                }
            }
        };
        // Dropping a sender closes its connection; done outside the lock.
        drop(stale);
        found
    }

    /// Puts a connection that is ready for its next request back, and drops any that went stale.
    fn checkin(&self, sender: SendRequest<B>) {
        let now = Instant::now();
        let stale: Vec<_> = {
            let mut idle = self.lock_idle();
            let (keep, stale) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|conn| conn.is_usable(now, self.idle_timeout));
            *idle = keep;
            idle.push(IdleConnection { sender, since: now });
            stale
        };
        drop(stale);
    }

}

impl<B: http_body::Body + Send + 'static> Http1Pool<B> {
    /// Starts the exchange of `request`, on an idle connection when there is one.
    pub(crate) fn exchange(
        self: &Arc<Self>,
        request: Request<B>,
        permit: OwnedSemaphorePermit,
    ) -> Http1Exchange<B> {
        let step = match self.checkout() {
            Some(sender) => Step::send(sender, request, true),
            None => Step::connect(self, request),
        };
        Http1Exchange {
            pool: self.clone(),
            permit: Some(permit),
            step,
        }
    }
}

/// One request on the pool: connect if needed, send, and hand the connection back once its response
/// body has been read.
///
/// Dropping it before the response arrives drops the request and the connection it was on (hyper
/// closes an HTTP/1.1 connection whose request was cancelled) and releases the permit.
pub(crate) struct Http1Exchange<B> {
    pool: Arc<Http1Pool<B>>,
    /// `Some` until the response is handed out; then it travels with the connection.
    permit: Option<OwnedSemaphorePermit>,
    step: Step<B>,
}

// Nothing in an exchange is pinned in place (the futures are boxed, the request is only moved), so it
// is `Unpin` whatever the body type.
impl<B> Unpin for Http1Exchange<B> {}

enum Step<B> {
    Connecting {
        connect: BoxFuture<Result<SendRequest<B>, crate::error::ConnectError>>,
        request: Option<Request<B>>,
    },
    Sending {
        send: SendFuture<B>,
        sender: Option<SendRequest<B>>,
        /// The connection came from the idle list, so it may have been closed by the server before the
        /// request reached it; such a request is tried once more on a new connection.
        pooled: bool,
    },
    Done,
}

impl<B: http_body::Body + Send + 'static> Step<B> {
    fn connect(pool: &Http1Pool<B>, request: Request<B>) -> Self {
        Step::Connecting {
            connect: pool.dialer.dial(),
            request: Some(request),
        }
    }

    fn send(mut sender: SendRequest<B>, request: Request<B>, pooled: bool) -> Self {
        Step::Sending {
            send: Box::pin(sender.try_send_request(request)),
            sender: Some(sender),
            pooled,
        }
    }
}

impl<B> Future for Http1Exchange<B>
where
    B: http_body::Body + Send + 'static,
{
    type Output = Result<Response<Incoming>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.step {
                Step::Connecting { connect, request } => {
                    let result = ready!(connect.as_mut().poll(cx));
                    let Some(request) = request.take() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    match result {
                        Ok(sender) => this.step = Step::send(sender, request, false),
                        Err(error) => {
                            this.step = Step::Done;
                            return Poll::Ready(Err(error.into()));
                        }
                    }
                }
                Step::Sending {
                    send,
                    sender,
                    pooled,
                } => {
                    let result = ready!(send.as_mut().poll(cx));
                    let pooled = *pooled;
                    let sender = sender.take();
                    this.step = Step::Done;
                    match result {
                        Ok(response) => {
                            if let (Some(sender), Some(permit)) = (sender, this.permit.take()) {
                                return_when_idle(Arc::downgrade(&this.pool), sender, permit);
                            }
                            return Poll::Ready(Ok(response));
                        }
                        Err(mut error) => match error.take_message() {
                            Some(request) if pooled => {
                                tracing::debug!(
                                    error = %error.error(),
                                    "pooled HTTP/1.1 connection closed before the request was written; \
                                     retrying on a new connection"
                                );
                                this.step = Step::connect(&this.pool, request);
                            }
                            Some(_) => {
                                return Poll::Ready(Err(
                                    UpstreamError::unsent(error.into_error()).into()
                                ));
                            }
                            None => {
                                return Poll::Ready(Err(UpstreamError::new(error.into_error()).into()));
                            }
                        },
                    }
                }
                Step::Done => return Poll::Ready(Err(polled_after_completion())),
            }
        }
    }
}

/// Hands the connection back to the pool once hyper says it can take the next request, which for
/// HTTP/1.1 means the response body has been read to its end. The permit is held until then.
///
/// If the body is dropped early or the connection fails, hyper closes the connection, `ready()` fails,
/// and the connection is dropped instead; the permit is released either way. A small task does the
/// waiting because nothing else is polled while the caller reads the body.
fn return_when_idle<B: http_body::Body + Send + 'static>(
    pool: Weak<Http1Pool<B>>,
    mut sender: SendRequest<B>,
    permit: OwnedSemaphorePermit,
) {
    tokio::spawn(async move {
        if sender.ready().await.is_ok() {
            if let Some(pool) = pool.upgrade() {
                pool.checkin(sender);
            }
        }
        // Only now: the connection is idle (or gone) before a waiter can take its place.
        drop(permit);
    });
}

fn polled_after_completion() -> BoxError {
    "HTTP client response future polled after completion".into()
}
