//! The exchange of one request on the HTTP/1.1 pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

use super::pool::{Conn, Http1Pool};
use crate::client::connect::BoxFuture;
use crate::error::{
    BadRequest, BoxError, ConnectError, RequestBodyError, UpstreamError, find_cause,
};

impl<B: http_body::Body + Send + 'static> Http1Pool<B> {
    /// Starts the exchange of `request`, on a pooled connection when there is one.
    pub(crate) fn exchange(
        self: &Arc<Self>,
        request: Request<B>,
        permit: OwnedSemaphorePermit,
    ) -> Http1Exchange<B> {
        let (step, waiting) = match self.checkout() {
            Some(sender) => (Step::send(sender, request, true), None),
            None => (Step::connect(self), Some(Box::new(request))),
        };
        Http1Exchange {
            pool: self.clone(),
            permit: Some(permit),
            step,
            waiting,
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
    /// The request while a connection is being made (kept here, not in `Step`, so the step stays
    /// small), boxed: a request head is about 300 bytes, and every layer above nests this future
    /// by value, so inline it would be copied with each of them on every request, pooled or not.
    /// Only a request that waits for a new connection pays for the box.
    waiting: Option<Box<Request<B>>>,
}

// Nothing in an exchange is pinned in place (the connect future is boxed, the send future lives in
// the connection's slot, the request is only moved), so it is `Unpin` whatever the body type.
impl<B> Unpin for Http1Exchange<B> {}

enum Step<B> {
    Connecting {
        connect: BoxFuture<Result<Conn<B>, ConnectError>>,
    },
    /// The send future is in the connection's slot (allocated once per connection).
    Sending {
        sender: Option<Conn<B>>,
        /// The connection came from the idle list, so it may have been closed by the server before the
        /// request reached it; such a request is tried once more on a new connection.
        pooled: bool,
    },
    Done,
}

impl<B: http_body::Body + Send + 'static> Step<B> {
    fn connect(pool: &Http1Pool<B>) -> Self {
        Step::Connecting {
            connect: pool.dialer.dial(),
        }
    }

    fn send(mut sender: Conn<B>, request: Request<B>, pooled: bool) -> Self {
        sender.sender.start_send(request);
        Step::Sending {
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
                Step::Connecting { connect } => {
                    let result = ready!(connect.as_mut().poll(cx));
                    let Some(request) = this.waiting.take() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    match result {
                        Ok(sender) => this.step = Step::send(sender, *request, false),
                        Err(error) => {
                            this.step = Step::Done;
                            return Poll::Ready(Err(error.into()));
                        }
                    }
                }
                Step::Sending { sender, pooled } => {
                    let Some(conn) = sender.as_mut() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let Some(result) = ready!(conn.sender.poll_send(cx)) else {
                        this.step = Step::Done;
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let pooled = *pooled;
                    let sender = sender.take();
                    this.step = Step::Done;
                    match result {
                        Ok(response) => {
                            if let (Some(sender), Some(permit)) = (sender, this.permit.take()) {
                                this.pool.return_when_ready(sender, permit);
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
                                this.waiting = Some(Box::new(request));
                                this.step = Step::connect(&this.pool);
                            }
                            Some(_) => {
                                return Poll::Ready(Err(
                                    UpstreamError::unsent(error.into_error()).into()
                                ));
                            }
                            None => return Poll::Ready(Err(exchange_failed(error.into_error()))),
                        },
                    }
                }
                Step::Done => return Poll::Ready(Err(polled_after_completion())),
            }
        }
    }
}

/// The error of an exchange that failed after the request went out: the client's fault when its own
/// body failed (hyper keeps the body's [`RequestBodyError`] in the cause chain), else the endpoint's.
fn exchange_failed(error: hyper::Error) -> BoxError {
    if find_cause::<RequestBodyError>(&error).is_some() {
        BadRequest::new(error).into()
    } else {
        UpstreamError::new(error).into()
    }
}

fn polled_after_completion() -> BoxError {
    "HTTP client response future polled after completion".into()
}
