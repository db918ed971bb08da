//! [`ServerStats`]: counters a running server keeps about its connections.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Live counters of one [`Server`](super::Server), for health endpoints, metrics and tests.
///
/// Cloning is cheap and every clone reads the same counters. Counts are monotonic since the server
/// was created, except [`active_connections`](Self::active_connections). Reads are relaxed: each
/// value is exact, but two reads are not a consistent snapshot.
#[derive(Clone, Default)]
pub struct ServerStats {
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    active: AtomicUsize,
    accept_errors: AtomicU64,
    handshake_failures: AtomicU64,
    handshake_timeouts: AtomicU64,
    idle_closed: AtomicU64,
    evicted_idle: AtomicU64,
    per_peer_refused: AtomicU64,
    write_stalls: AtomicU64,
    close_requested: AtomicU64,
    http1_parked: AtomicU64,
}

impl ServerStats {
    /// TCP connections accepted.
    pub fn accepted_connections(&self) -> u64 {
        self.counters.accepted.load(Ordering::Relaxed)
    }

    /// Connections currently held: handshaking, serving or draining. Never above
    /// [`ServerConfig::max_connections`](super::ServerConfig::max_connections).
    pub fn active_connections(&self) -> usize {
        self.counters.active.load(Ordering::Relaxed)
    }

    /// Errors returned by `accept(2)`: a client that gave up before it was accepted, or the process
    /// out of file descriptors and the like (then the server backs off briefly). None ends the server.
    pub fn accept_errors(&self) -> u64 {
        self.counters.accept_errors.load(Ordering::Relaxed)
    }

    /// Connections closed because the [`Acceptor`](super::Acceptor) handshake failed.
    pub fn handshake_failures(&self) -> u64 {
        self.counters.handshake_failures.load(Ordering::Relaxed)
    }

    /// Connections closed because the handshake outlived
    /// [`ServerConfig::handshake_timeout`](super::ServerConfig::handshake_timeout).
    pub fn handshake_timeouts(&self) -> u64 {
        self.counters.handshake_timeouts.load(Ordering::Relaxed)
    }

    /// Connections closed after [`ServerConfig::idle_timeout`](super::ServerConfig::idle_timeout)
    /// with no request in progress.
    pub fn idle_closed(&self) -> u64 {
        self.counters.idle_closed.load(Ordering::Relaxed)
    }

    /// Idle connections closed to make room for a new one at
    /// [`ServerConfig::max_connections`](super::ServerConfig::max_connections).
    pub fn evicted_idle(&self) -> u64 {
        self.counters.evicted_idle.load(Ordering::Relaxed)
    }

    /// Connections closed unserved because their client IP address already held
    /// [`ServerConfig::max_connections_per_peer`](super::ServerConfig::max_connections_per_peer)
    /// connections. Not counted in [`accepted_connections`](Self::accepted_connections).
    pub fn per_peer_refused(&self) -> u64 {
        self.counters.per_peer_refused.load(Ordering::Relaxed)
    }

    /// Connections closed because a write to the client made no progress for
    /// [`ServerConfig::write_stall_timeout`](super::ServerConfig::write_stall_timeout).
    pub fn write_stalls(&self) -> u64 {
        self.counters.write_stalls.load(Ordering::Relaxed)
    }

    /// Connections closed gracefully because their [`CloseHandle`](super::CloseHandle) asked
    /// (not counting those already closing for another reason).
    pub fn close_requested(&self) -> u64 {
        self.counters.close_requested.load(Ordering::Relaxed)
    }

    /// Times an idle HTTP/1.1 connection was parked: its hyper connection and buffers dropped
    /// while it waits for the client's next request (see
    /// [`ServerConfig::http1_park_after`](super::ServerConfig::http1_park_after)). A connection
    /// parked in each of several idle periods counts once for each.
    pub fn http1_parked(&self) -> u64 {
        self.counters.http1_parked.load(Ordering::Relaxed)
    }

    pub(super) fn record_http1_parked(&self) {
        self.counters.http1_parked.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_close_requested(&self) {
        self.counters
            .close_requested
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_idle_closed(&self) {
        self.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_evicted_idle(&self) {
        self.counters.evicted_idle.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_per_peer_refused(&self) {
        self.counters
            .per_peer_refused
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_write_stall(&self) {
        self.counters.write_stalls.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_accept_error(&self) {
        self.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_handshake_failure(&self) {
        self.counters
            .handshake_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_handshake_timeout(&self) {
        self.counters
            .handshake_timeouts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an accepted connection as accepted and active until the guard is dropped.
    pub(super) fn connection_opened(&self) -> ActiveConnection {
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        self.counters.active.fetch_add(1, Ordering::Relaxed);
        ActiveConnection {
            stats: self.clone(),
        }
    }
}

impl fmt::Debug for ServerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerStats")
            .field("accepted_connections", &self.accepted_connections())
            .field("active_connections", &self.active_connections())
            .field("accept_errors", &self.accept_errors())
            .field("handshake_failures", &self.handshake_failures())
            .field("handshake_timeouts", &self.handshake_timeouts())
            .field("idle_closed", &self.idle_closed())
            .field("evicted_idle", &self.evicted_idle())
            .field("per_peer_refused", &self.per_peer_refused())
            .field("write_stalls", &self.write_stalls())
            .field("close_requested", &self.close_requested())
            .field("http1_parked", &self.http1_parked())
            .finish()
    }
}

/// Holds one unit of [`ServerStats::active_connections`] for the life of a connection task.
#[derive(Debug)]
pub(super) struct ActiveConnection {
    stats: ServerStats,
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.stats.counters.active.fetch_sub(1, Ordering::Relaxed);
    }
}
