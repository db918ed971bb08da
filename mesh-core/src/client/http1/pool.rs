//! The HTTP/1.1 connection pool: idle connections, and connections on their way back.
//!
//! After a response head is handed out, its connection is *returning*: it becomes usable again once
//! the caller has read the body to its end. A small task per response waits for that and moves the
//! connection to the idle list, then releases the request's permit. Since that task may run only after
//! the caller has already sent its next request, a checkout also looks at returning connections and
//! takes one hyper already reports ready (releasing the permit it still held and waking its task), so
//! back-to-back requests stay on one connection.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hyper::client::conn::http1::SendRequest;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::reservation::Slots;
use crate::client::connect::{Dial, Dialed};

/// A pooled connection: hyper's sender and the handle that may retire it.
pub(super) type Conn<B> = Dialed<SendRequest<B>>;

/// The HTTP/1.1 connections of one client and all its clones.
pub(crate) struct Http1Pool<B> {
    state: Mutex<PoolState<B>>,
    slots: Slots,
    idle_timeout: Duration,
    pub(super) dialer: Box<dyn Dial<SendRequest<B>>>,
}

struct PoolState<B> {
    /// Least recently used first.
    idle: Vec<IdleConnection<B>>,
    returning: Vec<Arc<Returning<B>>>,
}

struct IdleConnection<B> {
    sender: Conn<B>,
    since: Instant,
}

impl<B> IdleConnection<B> {
    /// Whether the connection can take a request: not closed by the server, not idle for too long.
    fn is_usable(&self, now: Instant, idle_timeout: Duration) -> bool {
        is_ready(&self.sender) && now.saturating_duration_since(self.since) <= idle_timeout
    }
}

/// Whether a connection can take a request now: open, not busy, not retired.
fn is_ready<B>(conn: &Conn<B>) -> bool {
    !conn.is_retired() && !conn.sender.is_closed() && conn.sender.is_ready()
}

impl<B> Http1Pool<B> {
    pub(crate) fn new(
        max_connections: usize,
        wait_timeout: Duration,
        idle_timeout: Duration,
        dialer: Box<dyn Dial<SendRequest<B>>>,
    ) -> Self {
        Self {
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                returning: Vec::new(),
            }),
            slots: Slots::new(max_connections, wait_timeout),
            idle_timeout,
            dialer,
        }
    }

    /// The slots that bound the requests (and so the busy connections).
    pub(crate) fn slots(&self) -> &Slots {
        &self.slots
    }

    /// How many connections sit idle, usable or not yet found stale.
    pub(crate) fn idle_count(&self) -> usize {
        self.lock().idle.len()
    }

    fn lock(&self) -> MutexGuard<'_, PoolState<B>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection that can take a request now: the most recently used idle one (so surplus
    /// connections age out), else a returning one that is already ready. Stale idle connections met
    /// on the way are closed.
    pub(super) fn checkout(&self) -> Option<Conn<B>> {
        let now = Instant::now();
        let mut stale = Vec::new();
        let mut found = None;
        let mut taken = None;
        {
            let mut state = self.lock();
            while let Some(conn) = state.idle.pop() {
                if conn.is_usable(now, self.idle_timeout) {
                    found = Some(conn.sender);
                    break;
                }
                stale.push(conn);
            }
            if found.is_none() {
                let ready = state
                    .returning
                    .iter()
                    .enumerate()
                    .find_map(|(i, returning)| returning.take_if_ready().map(|taken| (i, taken)));
                if let Some((i, ready)) = ready {
                    state.returning.swap_remove(i);
                    taken = Some(ready);
                }
            }
        }
        // Outside the lock: dropping a sender closes its connection; the returning task that lost its
        // connection is woken to end, and the permit it held is released (this request has its own).
        drop(stale);
        if let Some(mut taken) = taken {
            found = taken.sender.take();
            if let Some(task) = taken.task.take() {
                task.wake();
            }
        }
        found
    }

    /// Puts a connection that is ready for its next request into the idle list, and drops idle ones
    /// that went stale.
    fn checkin(&self, sender: Conn<B>) {
        let now = Instant::now();
        let stale: Vec<_> = {
            let mut state = self.lock();
            let (keep, stale) = std::mem::take(&mut state.idle)
                .into_iter()
                .partition(|conn| conn.is_usable(now, self.idle_timeout));
            state.idle = keep;
            // A retired connection is not kept: the response just read was its last one.
            if !sender.is_retired() {
                state.idle.push(IdleConnection { sender, since: now });
            }
            stale
        };
        drop(stale);
    }

    fn forget_returning(&self, returning: &Arc<Returning<B>>) {
        self.lock()
            .returning
            .retain(|other| !Arc::ptr_eq(other, returning));
    }
}

impl<B: Send + 'static> Http1Pool<B> {
    /// Hands a connection whose response head went out back to the pool once hyper says it can take
    /// the next request, which for HTTP/1.1 means the response body has been read to its end. The
    /// request's permit is held until then.
    ///
    /// If the body is dropped early or the connection fails, hyper closes the connection and it is
    /// dropped instead; the permit is released either way. A task does the waiting because nothing
    /// else is polled while the caller reads the body.
    pub(super) fn return_when_ready(
        self: &Arc<Self>,
        sender: Conn<B>,
        permit: OwnedSemaphorePermit,
    ) {
        let returning = Arc::new(Returning {
            state: Mutex::new(ReturningState {
                sender: Some(sender),
                permit: Some(permit),
                task: None,
            }),
        });
        self.lock().returning.push(returning.clone());
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            let outcome = poll_fn(|cx| returning.poll_ready(cx)).await;
            finish_return(&pool, &returning, outcome);
        });
    }
}

/// Ends a return: a ready connection goes idle before its permit is released, so a request woken by
/// the permit finds it.
fn finish_return<B>(
    pool: &Weak<Http1Pool<B>>,
    returning: &Arc<Returning<B>>,
    outcome: Option<(Conn<B>, Option<OwnedSemaphorePermit>)>,
) {
    let Some(pool) = pool.upgrade() else {
        return;
    };
    pool.forget_returning(returning);
    if let Some((sender, permit)) = outcome {
        pool.checkin(sender);
        drop(permit);
    }
}

/// A connection whose response is being read, shared by its returning task and the pool (which may
/// take it early).
struct Returning<B> {
    state: Mutex<ReturningState<B>>,
}

struct ReturningState<B> {
    /// `None` once taken by a checkout or closed.
    sender: Option<Conn<B>>,
    permit: Option<OwnedSemaphorePermit>,
    /// The returning task, to wake when its connection is taken.
    task: Option<Waker>,
}

impl<B> Returning<B> {
    fn lock(&self) -> MutexGuard<'_, ReturningState<B>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ready with the connection and its permit once it can take a request; ready with `None` when it
    /// closed (its permit then released) or was taken by a checkout.
    #[allow(clippy::type_complexity)]
    fn poll_ready(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(Conn<B>, Option<OwnedSemaphorePermit>)>> {
        let mut state = self.lock();
        let Some(sender) = state.sender.as_mut() else {
            return Poll::Ready(None);
        };
        match sender.sender.poll_ready(cx) {
            Poll::Pending => {
                state.task = Some(cx.waker().clone());
                Poll::Pending
            }
            Poll::Ready(Ok(())) => {
                let permit = state.permit.take();
                Poll::Ready(state.sender.take().map(|sender| (sender, permit)))
            }
            Poll::Ready(Err(_closed)) => {
                state.sender = None;
                state.permit = None;
                Poll::Ready(None)
            }
        }
    }

    /// Everything in the slot if the connection can take a request now.
    fn take_if_ready(&self) -> Option<ReturningState<B>> {
        let mut state = self.lock();
        if !state.sender.as_ref().is_some_and(is_ready) {
            return None;
        }
        Some(ReturningState {
            sender: state.sender.take(),
            permit: state.permit.take(),
            task: state.task.take(),
        })
    }
}
