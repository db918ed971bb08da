//! The HTTP/1.1 connection pool: idle connections, and connections on their way back.
//!
//! After a response head is handed out, its connection is *returning*: it becomes usable again once
//! the caller has read the body to its end. The connection's own task waits for that and moves the
//! connection to the idle list, then releases the request's permit (see
//! [`connection`](super::connection)). Since that task may run only after the caller has already sent
//! its next request, a checkout also looks at returning connections and takes one hyper already
//! reports ready (releasing the permit it still held), so back-to-back requests stay on one
//! connection.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::connection::{ConnShared, Http1Sender, Parked};
use super::reservation::Slots;
use crate::client::connect::{Dial, Dialed};

/// A pooled connection: hyper's sender (with its send slot and its link to the connection task) and
/// the handle that may retire it.
pub(crate) type Conn<B> = Dialed<Http1Sender<B>>;

/// The HTTP/1.1 connections of one client and all its clones.
pub(crate) struct Http1Pool<B> {
    state: Mutex<PoolState<B>>,
    slots: Slots,
    idle_timeout: Duration,
    pub(super) dialer: Box<dyn Dial<Http1Sender<B>>>,
}

struct PoolState<B> {
    /// Least recently used first.
    idle: Vec<IdleConnection<B>>,
    /// Connections parked with their task until their response body has been read.
    returning: Vec<Arc<ConnShared<B>>>,
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
pub(super) fn is_ready<B>(conn: &Conn<B>) -> bool {
    !conn.is_retired() && !conn.sender.send.is_closed() && conn.sender.send.is_ready()
}

impl<B> Http1Pool<B> {
    pub(crate) fn new(
        max_connections: usize,
        wait_timeout: Duration,
        idle_timeout: Duration,
        dialer: Box<dyn Dial<Http1Sender<B>>>,
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

    #[cfg(test)]
    pub(crate) fn returning_count(&self) -> usize {
        self.lock().returning.len()
    }

    fn lock(&self) -> MutexGuard<'_, PoolState<B>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection that can take a request now: the most recently used idle one (so surplus
    /// connections age out), else a returning one that is already ready. Stale idle connections met
    /// on the way are closed.
    pub(super) fn checkout(&self) -> Option<Conn<B>> {
        let now = crate::time::now();
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
                    .find_map(|(i, shared)| shared.take_if_ready().map(|taken| (i, taken)));
                if let Some((i, ready)) = ready {
                    state.returning.swap_remove(i);
                    taken = Some(ready);
                }
            }
        }
        // Outside the lock: dropping a sender closes its connection; the permit a returning
        // connection still held is released (this request has its own).
        drop(stale);
        if let Some(taken) = taken {
            let Parked { conn, permit, .. } = taken;
            found = Some(conn);
            drop(permit);
        }
        found
    }

    /// Puts a connection that is ready for its next request into the idle list, and drops the idle
    /// ones that timed out.
    pub(super) fn checkin(&self, sender: Conn<B>) {
        let now = crate::time::now();
        let stale: Vec<_> = {
            let mut state = self.lock();
            // The list is oldest first, so the timed-out ones are its front: only those are
            // looked at (a busy client checks in after each response, with many connections
            // idle). One the server closed is dropped when a checkout meets it, or when it
            // times out.
            let expired = state
                .idle
                .iter()
                .take_while(|conn| now.saturating_duration_since(conn.since) > self.idle_timeout)
                .count();
            let stale = state.idle.drain(..expired).collect();
            // A retired connection is not kept: the response just read was its last one.
            if !sender.is_retired() {
                state.idle.push(IdleConnection { sender, since: now });
            }
            stale
        };
        drop(stale);
    }

    pub(super) fn forget_returning(&self, returning: &Arc<ConnShared<B>>) {
        self.lock()
            .returning
            .retain(|other| !Arc::ptr_eq(other, returning));
    }
}

impl<B> Http1Pool<B> {
    /// Hands a connection whose response head went out back to the pool once hyper says it can take
    /// the next request, which for HTTP/1.1 means the response body has been read to its end. The
    /// request's permit is held until then.
    ///
    /// The connection's own task does the waiting (see [`connection`](super::connection)): the
    /// connection is parked where that task finds it, so nothing is spawned or allocated per
    /// request. If the body is dropped early or the connection fails, hyper closes the connection and
    /// it is dropped instead; the permit is released either way.
    pub(super) fn return_when_ready(self: &Arc<Self>, conn: Conn<B>, permit: OwnedSemaphorePermit) {
        let shared = conn.sender.shared.clone();
        let parked = Parked {
            conn,
            permit,
            pool: Arc::downgrade(self),
        };
        // Listed before it is parked, so that its task, returning it, finds the entry to remove.
        self.lock().returning.push(shared.clone());
        if let Err(ended) = shared.park(parked) {
            // The connection task is gone: the connection is closed.
            self.forget_returning(&shared);
            drop(ended);
        }
    }
}
