//! [`HealthState`] and [`HealthStatus`]: the checker's verdict, shared with the gate and observers.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};

use tokio::sync::Notify;
use tokio::time::Instant;

/// Whether active health checks consider an endpoint fit for traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HealthState {
    /// Checks pass (or have not failed often enough yet): the endpoint takes traffic.
    Healthy,
    /// Checks failed [`unhealthy_threshold`](super::HealthCheckConfig::unhealthy_threshold) times
    /// in a row: the endpoint is not ready until checks pass again.
    Unhealthy,
}

impl HealthState {
    /// `"healthy"` or `"unhealthy"`, as in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A read-only view of one endpoint's health, shared with its
/// [`HealthChecked`](super::HealthChecked) service and its background checker.
///
/// Clones observe the same endpoint. Holding one does not keep the checker running: the checker
/// stops when the last clone of the service is dropped, after which the state stays as it was.
#[derive(Clone)]
pub struct HealthStatus {
    shared: Arc<Shared>,
}

impl HealthStatus {
    pub(crate) fn new(initial: HealthState) -> Self {
        Self {
            shared: Arc::new(Shared {
                healthy: AtomicBool::new(initial == HealthState::Healthy),
                changed: Notify::new(),
                inner: Mutex::new(Inner {
                    since: Instant::now(),
                    wakers: Vec::new(),
                }),
            }),
        }
    }

    /// The current state.
    pub fn state(&self) -> HealthState {
        if self.is_healthy() {
            HealthState::Healthy
        } else {
            HealthState::Unhealthy
        }
    }

    /// Whether the endpoint is [`Healthy`](HealthState::Healthy).
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// When the current state began (tokio clock): the last transition, or the service's
    /// creation. A balancer applying [slow start](crate::slow_start) restarts the ramp from here
    /// when an endpoint turns healthy again.
    pub fn since(&self) -> Instant {
        self.shared.lock().since
    }

    /// Waits until the endpoint is in `state`; returns at once if it already is.
    ///
    /// For demos, tests and readiness reporting; the request path never waits here (the
    /// [`HealthChecked`](super::HealthChecked) gate is woken through its waker). Cancel-safe. If
    /// the checker has stopped (the service was dropped), a state other than the current one
    /// never comes.
    pub async fn wait_for(&self, state: HealthState) {
        loop {
            let changed = self.shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the check, so a transition in between is not missed.
            changed.as_mut().enable();
            if self.state() == state {
                return;
            }
            changed.await;
        }
    }

    /// Moves to `state` at `now`; wakes every task waiting for the endpoint to turn healthy.
    pub(crate) fn set(&self, state: HealthState, now: Instant) {
        let healthy = state == HealthState::Healthy;
        let wakers = {
            let mut inner = self.shared.lock();
            inner.since = now;
            // Stored under the lock so that `poll_healthy`'s register-then-recheck cannot miss it.
            self.shared.healthy.store(healthy, Ordering::Release);
            if healthy {
                std::mem::take(&mut inner.wakers)
            } else {
                Vec::new()
            }
        };
        for waker in wakers {
            waker.wake();
        }
        self.shared.changed.notify_waiters();
    }

    /// `true` when healthy; otherwise registers `cx`'s waker to be woken at the next transition
    /// to healthy and returns `false`.
    ///
    /// Wakers are deduplicated with `will_wake`, so a task polling repeatedly is stored once (a
    /// balancer polls all its endpoints with one waker); the list is emptied at every transition
    /// to healthy.
    pub(crate) fn poll_healthy(&self, cx: &mut Context<'_>) -> bool {
        if self.is_healthy() {
            return true;
        }
        let mut inner = self.shared.lock();
        if self.shared.healthy.load(Ordering::Acquire) {
            return true;
        }
        if !inner.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            inner.wakers.push(cx.waker().clone());
        }
        false
    }
}

impl fmt::Debug for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthStatus")
            .field("state", &self.state())
            .field("since", &self.since())
            .finish()
    }
}

struct Shared {
    /// Read without the lock on every `poll_ready`; written only under it.
    healthy: AtomicBool,
    /// Woken at every transition, for [`HealthStatus::wait_for`].
    changed: Notify,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing here can leave `Inner` half-updated, so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Inner {
    since: Instant,
    wakers: Vec<Waker>,
}
