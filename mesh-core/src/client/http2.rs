//! HTTP/2: one multiplexed connection shared by a client and all its clones, made lazily and made
//! again after it closes.
//!
//! Requests take a clone of the connection's `SendRequest` without waiting when the connection is up.
//! Otherwise they queue on an async mutex; the first one in connects while holding it, and the others
//! then find the new connection, or fail with the same [`ConnectError`] if the attempt they waited on
//! failed (so N queued requests do not wait for N connect timeouts in a row). Streams beyond the
//! server's `SETTINGS_MAX_CONCURRENT_STREAMS` wait inside hyper.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http2::SendRequest};

use super::connect::{BoxFuture, Dial, Dialed};
use super::request_body::BodyFailure;
use crate::error::{BadRequest, BoxError, ConnectError, UpstreamError, find_cause};

type SendFuture<B> = BoxFuture<Result<Response<Incoming>, TrySendError<Request<B>>>>;

/// The HTTP/2 connection of one client and all its clones.
pub(crate) struct Http2Connection<B> {
    slot: tokio::sync::Mutex<Slot<B>>,
    /// Connect attempts finished so far; a waiter compares it with the number of a stored failure to
    /// tell whether that failure happened while it waited.
    attempts: AtomicU64,
    dialer: Box<dyn Dial<SendRequest<B>>>,
}

struct Slot<B> {
    sender: Option<Dialed<SendRequest<B>>>,
    /// The last failed attempt: its number and its error.
    failure: Option<(u64, Arc<ConnectError>)>,
}

impl<B> Slot<B> {
    /// The connection's sender if it can take a request. A retired connection is let go here:
    /// its streams in progress carry on, and hyper closes it once they end and no sender is left.
    fn live_sender(&mut self) -> Option<SendRequest<B>> {
        if self.sender.as_ref().is_some_and(Dialed::is_retired) {
            self.sender = None;
        }
        self.sender
            .as_ref()
            .map(|dialed| &dialed.sender)
            .filter(|s| !s.is_closed())
            .cloned()
    }
}

impl<B: Send + 'static> Http2Connection<B> {
    pub(crate) fn new(dialer: Box<dyn Dial<SendRequest<B>>>) -> Self {
        Self {
            slot: tokio::sync::Mutex::new(Slot {
                sender: None,
                failure: None,
            }),
            attempts: AtomicU64::new(0),
            dialer,
        }
    }

    /// The current connection, or a new one.
    fn connection(self: &Arc<Self>) -> BoxFuture<Result<SendRequest<B>, ConnectError>> {
        let this = self.clone();
        let seen = self.attempts.load(Ordering::Acquire);
        Box::pin(async move {
            let mut slot = this.slot.lock().await;
            if let Some(sender) = slot.live_sender() {
                return Ok(sender);
            }
            if let Some((attempt, error)) = &slot.failure
                && *attempt > seen
            {
                return Err(ConnectError::new(SharedConnectFailure(error.clone())));
            }
            let result = this.dialer.dial().await;
            let attempt = this.attempts.fetch_add(1, Ordering::AcqRel) + 1;
            match result {
                Ok(dialed) => {
                    let sender = dialed.sender.clone();
                    slot.sender = Some(dialed);
                    slot.failure = None;
                    Ok(sender)
                }
                Err(error) => {
                    slot.sender = None;
                    let error = Arc::new(error);
                    slot.failure = Some((attempt, error.clone()));
                    Err(ConnectError::new(SharedConnectFailure(error)))
                }
            }
        })
    }

    /// Starts the exchange of `request`, at once when the connection is up.
    pub(crate) fn exchange(
        self: &Arc<Self>,
        request: Request<B>,
        body_failure: BodyFailure,
    ) -> Http2Exchange<B>
    where
        B: http_body::Body,
    {
        let live = self
            .slot
            .try_lock()
            .ok()
            .and_then(|mut slot| slot.live_sender());
        let (step, waiting) = match live {
            Some(sender) => (Step::send(sender, request), None),
            None => (
                Step::Connecting {
                    connect: self.connection(),
                },
                Some(Box::new(request)),
            ),
        };
        Http2Exchange {
            connection: self.clone(),
            step,
            waiting,
            retried: false,
            body_failure,
        }
    }
}

/// One request on the shared connection. Dropping it resets the stream (hyper sends `RST_STREAM`);
/// the connection stays up for the others.
pub(crate) struct Http2Exchange<B> {
    connection: Arc<Http2Connection<B>>,
    step: Step<B>,
    /// The request while a connection is awaited (kept here, not in `Step`, so the step stays
    /// small), boxed so that the future does not carry a request head (about 300 bytes) inline
    /// through every layer above it: only a request that waits for the connection pays for it.
    waiting: Option<Box<Request<B>>>,
    /// A request handed back unsent by a closing connection is tried once more on a new one.
    retried: bool,
    /// Where the request body's own failure is kept: hyper only resets the stream.
    body_failure: BodyFailure,
}

// Nothing in an exchange is pinned in place (the futures are boxed, the request is only moved).
impl<B> Unpin for Http2Exchange<B> {}

enum Step<B> {
    Connecting {
        connect: BoxFuture<Result<SendRequest<B>, ConnectError>>,
    },
    Sending {
        send: SendFuture<B>,
    },
    Done,
}

impl<B: http_body::Body + Send + 'static> Step<B> {
    fn send(mut sender: SendRequest<B>, request: Request<B>) -> Self {
        Step::Sending {
            send: Box::pin(sender.try_send_request(request)),
        }
    }
}

impl<B> Future for Http2Exchange<B>
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
                    let request = this.waiting.take();
                    this.step = Step::Done;
                    match (result, request) {
                        (Ok(sender), Some(request)) => this.step = Step::send(sender, *request),
                        (Err(error), _) => return Poll::Ready(Err(error.into())),
                        (Ok(_), None) => return Poll::Ready(Err(polled_after_completion())),
                    }
                }
                Step::Sending { send } => {
                    let result = ready!(send.as_mut().poll(cx));
                    this.step = Step::Done;
                    match result {
                        Ok(response) => return Poll::Ready(Ok(response)),
                        Err(mut error) => match error.take_message() {
                            Some(request) if !this.retried => {
                                tracing::debug!(
                                    error = %error.error(),
                                    "HTTP/2 connection closed before the request was sent; \
                                     retrying on a new connection"
                                );
                                this.retried = true;
                                this.waiting = Some(Box::new(request));
                                this.step = Step::Connecting {
                                    connect: this.connection.connection(),
                                };
                            }
                            Some(_) => {
                                return Poll::Ready(Err(
                                    UpstreamError::unsent(error.into_error()).into()
                                ));
                            }
                            None => {
                                let error = match this.body_failure.take() {
                                    Some(body) => BadRequest::new(body).into(),
                                    None => classify(error.into_error()),
                                };
                                return Poll::Ready(Err(error));
                            }
                        },
                    }
                }
                Step::Done => return Poll::Ready(Err(polled_after_completion())),
            }
        }
    }
}

/// An HTTP/2 failure whose request the server certainly did not process becomes an unsent
/// [`UpstreamError`]: a stream refused with `REFUSED_STREAM`, or one cut off by a graceful `GOAWAY`
/// because its id was above the last stream the server will process (RFC 9113 §8.7, §6.8). h2 reports
/// a remote `GOAWAY` to a stream only in that case when the reason is `NO_ERROR`.
fn classify(error: hyper::Error) -> BoxError {
    let unprocessed = find_cause::<h2::Error>(&error).is_some_and(|h2| {
        h2.is_remote()
            && ((h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM))
                || (h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR)))
    });
    if unprocessed {
        UpstreamError::unsent(error).into()
    } else {
        UpstreamError::new(error).into()
    }
}

/// The cause of a connect attempt shared by every request that waited on it.
///
/// Its source is the attempt's own cause, so `is_caused_by` sees through it (a shared connect timeout
/// is still caused by a `Timeout`).
#[derive(Debug)]
struct SharedConnectFailure(Arc<ConnectError>);

impl fmt::Display for SharedConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.source() {
            Some(source) => write!(f, "shared connect attempt: {source}"),
            None => f.write_str("shared connect attempt failed"),
        }
    }
}

impl StdError for SharedConnectFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

fn polled_after_completion() -> BoxError {
    "HTTP client response future polled after completion".into()
}
