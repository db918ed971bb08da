//! One connection's task: handshake, HTTP serving, graceful shutdown.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Extensions, Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, sleep};
use tower::ServiceExt;
use tower::util::Oneshot;
use tower_service::Service;
use tracing::debug;

use super::acceptor::{Acceptor, ConnectionInfo};
use super::close::{CloseHandle, FinishOnDrop, Registered};
use super::preface_deadline::PrefaceDeadline;
use super::protocol::{Builders, HttpConnection, Parked};
use super::registry::{Activity, Registration, Registry};
use super::stats::ServerStats;
use super::tracked::{TrackedBody, TrackedFuture};
use super::write_stall::WriteStall;
use crate::error::BoxError;
use crate::time::PollClock;

/// How long a connection closed for idleness (or by its [`CloseHandle`], once its requests have
/// finished) may take over the HTTP/2 `GOAWAY` exchange (one round trip: `GOAWAY`, `PING`, the
/// peer's `PING` answer, the final `GOAWAY`) before it is disconnected, if it is still idle. One
/// second is ten times a slow intercontinental round trip.
const GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// What every connection task of one server shares.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) builders: Builders,
    pub(super) http1_park_after: Option<Duration>,
    pub(super) handshake_timeout: Duration,
    pub(super) header_read_timeout: Option<Duration>,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) write_stall_timeout: Option<Duration>,
    pub(super) tcp_nodelay: bool,
    /// `ServerConfig::connection_extensions`.
    pub(super) connection_extensions: bool,
    pub(super) stats: ServerStats,
}

/// Whether the connection was asked to close by the idle timeout, by eviction or through its
/// [`CloseHandle`]. (Closing for the server's shutdown is tracked apart: it waits for the peer,
/// bounded by the drain deadline.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closing {
    /// Not asked.
    No,
    /// Asked through the [`CloseHandle`], with a graceful shutdown started; requests in progress
    /// are finishing. Becomes `Idle(now + GOAWAY_GRACE)` once none is left.
    Requested,
    /// Asked, with a graceful shutdown started; once idle at or after this instant, the
    /// connection is dropped without waiting for the peer to finish the exchange.
    Idle(Instant),
}

/// Serves one accepted connection until it closes, or until it has drained once the registry
/// drains (`Registry::drain_all`).
///
/// `_permit` is this connection's slot under `max_connections`; dropping it at the end of the task
/// lets the accept loop take the next connection. `registration` is its entry in the server's
/// registry (activity, per-peer count), removed when the task ends.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
pub(super) async fn serve_connection<A, S, B>(
    shared: Arc<Shared>,
    acceptor: A,
    service: S,
    tcp: TcpStream,
    info: ConnectionInfo,
    registration: Registration,
    _permit: OwnedSemaphorePermit,
) where
    A: Acceptor,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let _active = shared.stats.connection_opened();
    if shared.tcp_nodelay
        && let Err(error) = tcp.set_nodelay(true)
    {
        debug!(peer = %info.peer_addr(), %error, "could not set TCP_NODELAY");
    }
    let activity = registration.activity().clone();
    let registry = registration.registry().clone();
    let mut registered = Registered::default();

    // The handshake, bounded in time and abandoned at shutdown or eviction: a connection that has
    // not reached HTTP yet has no request to finish.
    let handshake = tokio::time::timeout(shared.handshake_timeout, acceptor.accept(tcp, &info));
    let (io, extensions) = {
        let mut handshake = pin!(handshake);
        let outcome = poll_fn(|cx| {
            // Registered before the flags are read, so a wake in between is not lost.
            registered.register(activity.waker(), cx.waker());
            if registry.is_draining() {
                return Poll::Ready(None);
            }
            if activity.is_evicted() {
                shared.stats.record_evicted_idle();
                return Poll::Ready(None);
            }
            handshake.as_mut().poll(cx).map(Some)
        })
        .await;
        match outcome {
            Some(Ok(Ok(accepted))) => accepted,
            Some(Ok(Err(error))) => {
                shared.stats.record_handshake_failure();
                debug!(peer = %info.peer_addr(), %error, "handshake failed");
                return;
            }
            Some(Err(_elapsed)) => {
                shared.stats.record_handshake_timeout();
                debug!(peer = %info.peer_addr(), timeout = ?shared.handshake_timeout, "handshake timed out");
                return;
            }
            None => return,
        }
    };

    // The acceptor's handle if it made one (to close the connection later), else the server's own,
    // which every request then carries too.
    let (close, own_close) = match extensions.get::<CloseHandle>() {
        Some(handle) => (handle.clone(), None),
        None => {
            let handle = CloseHandle::new();
            (handle.clone(), Some(handle))
        }
    };
    let _finish = FinishOnDrop(close.clone());
    let mut close_seen = false;
    let mut close_registered = Registered::default();

    let io = PrefaceDeadline::new(io, shared.header_read_timeout);
    let io = WriteStall::new(io, shared.write_stall_timeout, shared.stats.clone())
        .report_to(activity.clone());
    let service = ConnectionContext {
        service,
        info,
        extensions,
        own_close,
        attach: shared.connection_extensions,
        registry: registry.clone(),
        activity: activity.clone(),
    };
    let mut conn = HttpConnection::new(io, service);

    // Serve until the connection ends. Four things ask it to finish early, each with a graceful
    // shutdown (HTTP/2: GOAWAY; HTTP/1.1: close after the current response, or at once if idle;
    // with no hyper connection, choosing the version or parked: at once): the server's shutdown
    // (then it keeps being driven until its requests finish; stopping it at the drain deadline
    // is the accept loop's job), the idle timeout and eviction (then it is disconnected as soon
    // as it is idle and past its grace, without waiting for the peer), and its close handle (the
    // same, with the grace counted from when its requests have finished). Idle HTTP/1.1
    // connections are parked (see `protocol`).
    let mut draining = false;
    let mut closing = Closing::No;
    let mut timer = pin!(sleep(Duration::ZERO));
    let mut timer_at: Option<Instant> = None;
    // The waker the armed timer was last polled with. Polling a timer registers the waker again
    // (tokio's cooperative budget, an atomic swap): while the connection's task is the one that
    // polled it, asking whether it fired is enough, and cheaper, on the wakes in between (a busy
    // connection is woken several times per request).
    let mut timer_waker: Option<Waker> = None;
    // The idle period (by its start) in which the park deadline has passed; and the one in which
    // the connection has already been parked (not parked twice in one period).
    let mut park_due: Option<Instant> = None;
    let mut parked_in: Option<Instant> = None;
    // What `Activity` was last told of the shortest idle deadline (it changes once, when the
    // HTTP version is known).
    let mut published_delay = None;
    // Both possible values, worked out once rather than on every poll.
    let (http1_delay, http2_delay) = (idle_delay(&shared, true), idle_delay(&shared, false));
    let result = poll_fn(|cx| {
        // The layers of the requests served in this poll share one clock reading.
        let _clock = PollClock::enter();
        // Registered before the state is read, so a wake in between is not lost: the registry
        // (drain, eviction), a request ending, and the close handle wake this task.
        registered.register(activity.waker(), cx.waker());
        close_registered.register(close.task_waker(), cx.waker());
        if !draining && registry.is_draining() {
            draining = true;
            activity.set_closing();
            if conn.graceful_shutdown() {
                return Poll::Ready(Ok(()));
            }
        }
        if closing == Closing::No && activity.is_evicted() {
            shared.stats.record_evicted_idle();
            debug!(peer = %info.peer_addr(), "closing an idle connection to make room");
            closing = Closing::Idle(Instant::now());
            activity.set_closing();
            if conn.graceful_shutdown() {
                return Poll::Ready(Ok(()));
            }
        }
        if !close_seen && close.is_close_requested() {
            close_seen = true;
            if closing == Closing::No && !draining {
                shared.stats.record_close_requested();
                debug!(peer = %info.peer_addr(), "closing a connection on request");
                closing = Closing::Requested;
                activity.set_closing();
                if conn.graceful_shutdown() {
                    return Poll::Ready(Ok(()));
                }
            }
        }
        // Until the version is known the connection may turn out HTTP/1.1, which parks: a
        // request ending in the poll that chose the version must see that shorter delay.
        let delay = if conn.is_http2() {
            http2_delay
        } else {
            http1_delay
        };
        if published_delay != Some(delay) {
            activity.set_idle_delay(delay);
            published_delay = Some(delay);
        }
        let idle = activity.is_idle();
        if closing == Closing::Requested && idle {
            closing = Closing::Idle(Instant::now() + GOAWAY_GRACE);
        }

        // The deadlines of an idle connection not closing: the idle timeout; over HTTP/1.1
        // (served by hyper or parked), the header-read timeout; while served by hyper's
        // HTTP/1.1, the park deadline (once per idle period).
        let idle_since = (idle && closing == Closing::No && !draining)
            .then(|| registration.idle_since());
        let idle_at = idle_since.zip(shared.idle_timeout).map(|(at, t)| at + t);
        let header_at = idle_since
            .filter(|_| conn.is_http1() || conn.is_parked())
            .zip(shared.header_read_timeout)
            .map(|(at, t)| at + t);
        let park_at = idle_since
            .filter(|since| {
                conn.is_http1() && park_due != Some(*since) && parked_in != Some(*since)
            })
            .zip(shared.http1_park_after)
            .map(|(at, t)| at + t);

        // The deadline that matters now, if any: the earliest of those while idle and not
        // closing, the end of the grace while closing.
        let deadline = match closing {
            _ if draining => None,
            Closing::No => [idle_at, header_at, park_at].into_iter().flatten().min(),
            Closing::Requested => None,
            Closing::Idle(at) => Some(at),
        };
        // The timer is moved only to an earlier instant. One armed for a later deadline than
        // needed now is moved; one armed earlier (for a past idle period, or a deadline since
        // pushed back) is left to fire, and the task then arms the deadline of that moment. So a
        // busy connection does not re-arm its timer per request, and a request ending need not
        // wake the task (see `Registry`).
        if let Some(at) = deadline
            && timer_at.is_none_or(|armed| armed > at)
        {
            timer.as_mut().reset(at);
            timer_at = Some(at);
            timer_waker = None;
            activity.set_armed_at(Some(registry.nanos(at)));
        }
        let fired = timer_at.is_some()
            && match &timer_waker {
                Some(waker) if waker.will_wake(cx.waker()) => timer.is_elapsed(),
                _ => {
                    timer_waker = Some(cx.waker().clone());
                    timer.as_mut().poll(cx).is_ready()
                }
            };
        if fired {
            timer_at = None;
            timer_waker = None;
            activity.set_armed_at(None);
            if !idle {
                // Busy, or busy again since: read the state afresh (a request may have ended
                // after `idle` was read and seen the timer still armed).
                cx.waker().wake_by_ref();
            }
        }
        if fired && idle {
            match closing {
                Closing::No => {
                    let now = Instant::now();
                    let idle_due = idle_at.is_some_and(|at| at <= now);
                    let header_due = header_at.is_some_and(|at| at <= now);
                    if idle_due {
                        shared.stats.record_idle_closed();
                    }
                    if header_due && !activity.is_write_blocked() {
                        // No request head in time (a partial one included, which hyper's
                        // graceful shutdown would wait for), and nothing left to write: close
                        // at once, as hyper's own header-read timeout did.
                        debug!(peer = %info.peer_addr(), "closing an HTTP/1.1 connection: no request head in time");
                        return Poll::Ready(Ok(()));
                    } else if idle_due || header_due {
                        // Idle too long, or the last response is still being written out:
                        // closed once that is done, or at the end of the grace.
                        debug!(peer = %info.peer_addr(), "closing an idle connection");
                        closing = Closing::Idle(now + GOAWAY_GRACE);
                        activity.set_closing();
                        if conn.graceful_shutdown() {
                            return Poll::Ready(Ok(()));
                        }
                    } else if park_at.is_some_and(|at| at <= now) {
                        park_due = idle_since;
                    }
                    // Wake again to arm the next timer.
                    cx.waker().wake_by_ref();
                }
                // No deadline is armed while requests finish.
                Closing::Requested => {}
                // Fired for an earlier deadline than the grace's end: arm that.
                Closing::Idle(at) if Instant::now() < at => cx.waker().wake_by_ref(),
                Closing::Idle(_) => {
                    // Give the connection one last chance to write its GOAWAY, then drop it.
                    if let Poll::Ready(result) = conn.poll(cx, &shared.builders) {
                        return Poll::Ready(result);
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
        let was_http1 = conn.is_http1();
        let polled = conn.poll(cx, &shared.builders);
        if polled.is_pending() && !was_http1 && conn.is_http1() {
            // The version was just chosen: HTTP/1.1 has deadlines of its own (the header-read
            // timeout, parking), so work them out again.
            cx.waker().wake_by_ref();
        }
        // Park once hyper is waiting for the client, in the idle period whose park deadline
        // passed, with nothing left to write and the client's next request not begun.
        if polled.is_pending()
            && park_due.is_some()
            && closing == Closing::No
            && !draining
            && activity.is_idle()
            && Some(registration.idle_since()) == park_due
            && !activity.is_write_blocked()
            && !activity.has_read_since_write()
        {
            parked_in = park_due.take();
            match conn.park(&shared.builders) {
                Parked::Waiting => shared.stats.record_http1_parked(),
                Parked::Rebuilt | Parked::No => {}
            }
            // Poll the new state: the parked socket registers for reading, a rebuilt
            // connection reads the bytes given back.
            cx.waker().wake_by_ref();
        }
        polled
    })
    .await;
    if let Err(error) = result {
        debug!(peer = %info.peer_addr(), %error, "connection ended with an error");
    }
}

/// The shortest deadline an idle period of a connection can have: the idle timeout, or for an
/// HTTP/1.1 connection the park delay or the header-read timeout if sooner (`None`: none
/// applies). A request ending wakes the task only if its timer would fire after that (see
/// `Registry`).
fn idle_delay(shared: &Shared, http1: bool) -> Option<Duration> {
    let http1_only = [shared.http1_park_after, shared.header_read_timeout];
    let http1_only = http1_only.into_iter().filter(|_| http1).flatten();
    shared.idle_timeout.into_iter().chain(http1_only).min()
}

/// Adapts the user's tower service to hyper, adding the connection's values to each request.
#[derive(Clone, Debug)]
pub(super) struct ConnectionContext<S> {
    service: S,
    info: ConnectionInfo,
    extensions: Extensions,
    /// The connection's [`CloseHandle`] when the server made it (else it is in `extensions`).
    own_close: Option<CloseHandle>,
    /// Whether requests get `info`, `own_close` and `extensions` (`ServerConfig::connection_extensions`).
    attach: bool,
    registry: Arc<Registry>,
    activity: Arc<Activity>,
}

// The service is never pinned (hyper calls it through `&self`), so the context moves freely; this
// lets hyper's HTTP/1.1 connection be unboxed from its pin and taken apart when it is parked.
impl<S> Unpin for ConnectionContext<S> {}

impl<S, B> hyper::service::Service<Request<Incoming>> for ConnectionContext<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<Oneshot<S, Request<Incoming>>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        if self.attach {
            let ext = req.extensions_mut();
            ext.insert(self.info);
            if let Some(close) = &self.own_close {
                ext.insert(close.clone());
            }
            // After `ConnectionInfo`, so an acceptor's own value of that type wins (see
            // `Acceptor`).
            if !self.extensions.is_empty() {
                ext.extend(self.extensions.clone());
            }
        }
        // hyper calls through `&self` and never waits for readiness; a clone driven by `Oneshot`
        // waits for `poll_ready` before `call`, as tower requires.
        let open = self.registry.open_request(&self.activity);
        TrackedFuture::new(self.service.clone().oneshot(req), open)
    }
}
