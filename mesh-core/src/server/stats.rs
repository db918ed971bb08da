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
