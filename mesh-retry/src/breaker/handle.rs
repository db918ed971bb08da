//! [`BreakerHandle`]: the shared state of one breaker; [`BreakerPermit`]: one admitted call.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;
use std::time::Duration;

use mesh_core::ConfigError;
use mesh_core::classify::{Completion, ErrorKind, FailureClass, OnCompletion, Outcome};
use mesh_core::error::CircuitOpen;
use tokio::sync::watch;
use tokio::time::Instant;

use super::config::{BreakerConfig, BreakerMode};
use super::core::{BreakerState, Core, Refusal, Ticket, Transition, Verdict};
use super::metrics::BreakerMetrics;

/// One circuit breaker's state, shared by every clone of the handle and of the services using it.
///
/// [`CircuitBreakerLayer`](super::CircuitBreakerLayer) makes one per service it wraps; build one
/// yourself to share a breaker between services, to watch its state, or to guard calls that are
/// not tower services ([`try_acquire`](Self::try_acquire) → [`BreakerPermit::record`]).
///
/// Cloning is cheap (an `Arc`); all clones see and change the same state. Time comes from
/// [`tokio::time::Instant`], so a paused test clock drives it.
///
/// The open → half-open change happens lazily, when a call (or [`state`](Self::state)) arrives
/// after the open period; a gate-mode service polled for readiness sets a timer for that moment,
/// so its change is published on time.
#[derive(Clone)]
pub struct BreakerHandle {
    shared: Arc<Shared>,
}

struct Shared {
    core: Mutex<Core>,
    events: watch::Sender<BreakerState>,
    metrics: BreakerMetrics,
    slow_call_duration: Option<Duration>,
    count_overloaded: bool,
    mode: BreakerMode,
    /// For the transition log line: the breaker's name and endpoint, when it has them.
    name: Option<std::borrow::Cow<'static, str>>,
    endpoint: Option<SocketAddr>,
}

impl fmt::Debug for BreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerHandle")
            .field("state", &*self.shared.events.borrow())
            .field("mode", &self.shared.mode)
            .finish_non_exhaustive()
    }
}

impl BreakerHandle {
    /// A closed breaker configured by `config`.
    pub fn new(config: &BreakerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::validated(config, None))
    }

    /// A closed breaker; `config` must have been validated. With `endpoint`, its metrics carry
    /// the endpoint's address (see [`BreakerRegistry`](super::BreakerRegistry)).
    pub(super) fn validated(config: &BreakerConfig, endpoint: Option<SocketAddr>) -> Self {
        let now = Instant::now();
        let (events, _) = watch::channel(BreakerState::Closed);
        Self {
            shared: Arc::new(Shared {
                core: Mutex::new(Core::new(config, now)),
                events,
                metrics: BreakerMetrics::new(config, endpoint),
                slow_call_duration: config.slow_call_duration,
                count_overloaded: config.count_overloaded,
                mode: config.mode,
                name: config.name.clone(),
                endpoint,
            }),
        }
    }

    /// A reference that does not keep the breaker alive (the registry's).
    pub(super) fn downgrade(&self) -> WeakBreaker {
        WeakBreaker(Arc::downgrade(&self.shared))
    }

    /// The current state (moving an expired open breaker to half-open first).
    pub fn state(&self) -> BreakerState {
        let mut core = self.lock();
        let transition = core.tick(Instant::now());
        let state = core.state();
        drop(core);
        self.publish(transition);
        state
    }

    /// A receiver of every state change, starting from the current state. Changes are published
    /// in order; a slow receiver sees only the latest (as with any `watch` channel).
    pub fn subscribe(&self) -> watch::Receiver<BreakerState> {
        self.shared.events.subscribe()
    }

    /// Whether the breaker fails fast or gates readiness.
    pub fn mode(&self) -> BreakerMode {
        self.shared.mode
    }

    /// Admits one call, or refuses with [`CircuitOpen`] while open or while every half-open probe
    /// slot is taken. The permit must be given the call's outcome; dropped without one, it is
    /// reclaimed (see [`BreakerPermit`]).
    pub fn try_acquire(&self) -> Result<BreakerPermit, CircuitOpen> {
        let mut permit = self.acquire(None).map_err(|_| CircuitOpen::new())?;
        permit.start_clock();
        Ok(permit)
    }

    /// Admits one call; a refused caller passing `waker` is woken when a half-open slot frees.
    /// The permit's slow-call clock is not started: call
    /// [`start_clock`](BreakerPermit::start_clock) when the call is sent (a closed breaker admits
    /// without reading the clock at all).
    pub(super) fn acquire(&self, waker: Option<&Waker>) -> Result<BreakerPermit, Refusal> {
        let (admission, transition) = self.lock().admit(Instant::now, waker);
        self.publish(transition);
        admission.map(|ticket| BreakerPermit {
            shared: Some(self.shared.clone()),
            ticket,
            started: None,
        })
    }

    pub(super) fn record_rejection(&self) {
        self.shared.metrics.rejected();
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        lock(&self.shared)
    }

    fn publish(&self, transition: Option<Transition>) {
        publish(&self.shared, transition);
    }
}

/// A [`BreakerHandle`] that does not keep the breaker alive.
#[derive(Clone)]
pub(super) struct WeakBreaker(Weak<Shared>);

impl WeakBreaker {
    /// The breaker, if a handle, service, permit or response body still holds it.
    pub(super) fn upgrade(&self) -> Option<BreakerHandle> {
        self.0.upgrade().map(|shared| BreakerHandle { shared })
    }

    /// Whether the breaker is gone.
    pub(super) fn is_dead(&self) -> bool {
        self.0.strong_count() == 0
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Core> {
    // A panic while holding the lock cannot leave `Core` half-updated in a way that matters more
    // than refusing all traffic forever would, so a poisoned lock is used as is.
    shared
        .core
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
}

fn publish(shared: &Shared, transition: Option<Transition>) {
    if let Some(transition) = transition {
        tracing::info!(
            name = shared.name.as_deref().unwrap_or(""),
            endpoint = shared.endpoint.map(tracing::field::display),
            from = transition.from.as_str(),
            to = transition.to.as_str(),
            "circuit breaker state change"
        );
        shared.events.send_replace(transition.to);
        shared.metrics.transition(transition);
    }
}

/// One admitted call. Give it the call's outcome with [`record`](Self::record) or
/// [`complete`](Self::complete).
///
/// Dropping it without an outcome (the response future or body was dropped, the caller gave up)
/// **reclaims** it: nothing is counted and, if it was a half-open probe, the probe slot is given back
/// so the next call can probe. A half-open breaker therefore never waits forever for probes that
/// will never report (the resilience4j #903 / #935 bug class). A cancellation says nothing about
/// the service — counting it as a failure would let client timeouts and hedging losers reopen
/// the breaker, counting it as a success could close a breaker on a dead service. To have a hung
/// service count as failed, put a timeout *inside* the breaker: its [`Timeout`] error is a failure.
///
/// [`Timeout`]: mesh_core::error::Timeout
pub struct BreakerPermit {
    shared: Option<Arc<Shared>>,
    ticket: Ticket,
    /// When the call was sent (`start_clock`), for the slow-call rule; `None` without one.
    started: Option<Instant>,
}

impl fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("ticket", &self.ticket)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl BreakerPermit {
    /// Starts the slow-call clock now (the service does it when the request is sent, not when
    /// readiness was reserved). Without a slow-call rule the duration is never read, so the
    /// clock is not read either.
    pub(super) fn start_clock(&mut self) {
        if self
            .shared
            .as_ref()
            .is_some_and(|shared| shared.slow_call_duration.is_some())
        {
            self.started = Some(mesh_core::time::now());
        }
    }

    /// Records the outcome of the call; its duration is measured up to now.
    pub fn record(mut self, outcome: &Outcome) {
        if let Some(shared) = self.shared.take() {
            let now = mesh_core::time::now();
            // A permit whose clock was never started took no measurable time.
            let elapsed = self.started.map_or(Duration::ZERO, |started| {
                now.saturating_duration_since(started)
            });
            let verdict = verdict(&shared, outcome, elapsed);
            let transition = lock(&shared).record(now, self.ticket, verdict);
            publish(&shared, transition);
        }
    }

    /// Records how an observed response ended: [`Completion::Cancelled`] is reclaimed as if the
    /// permit were dropped.
    pub fn complete(self, completion: &Completion) {
        match completion {
            Completion::Finished(outcome) => self.record(outcome),
            Completion::Cancelled => drop(self),
        }
    }

    /// Records an error returned instead of a response, classified with [`ErrorKind::of`].
    pub fn record_error<E: 'static>(self, error: &E) {
        self.record(&Outcome::Failure(FailureClass::Error(ErrorKind::of(error))));
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let transition =
                lock(&shared).record(mesh_core::time::now(), self.ticket, Verdict::Ignored);
            publish(&shared, transition);
        }
    }
}

fn verdict(shared: &Shared, outcome: &Outcome, elapsed: Duration) -> Verdict {
    // The client's own malformed request, or a saturated local pool, says nothing about the
    // service's health (see `ErrorKind::is_endpoint_failure`).
    if let Outcome::Failure(class) = outcome
        && class
            .error_kind()
            .is_some_and(|kind| !kind.is_endpoint_failure())
    {
        return Verdict::Ignored;
    }
    let overloaded = match outcome {
        Outcome::Success => false,
        Outcome::Failure(class) => {
            class.is_overloaded()
                || matches!(
                    class.error_kind(),
                    Some(ErrorKind::Overloaded | ErrorKind::RateLimited)
                )
        }
    };
    if overloaded && !shared.count_overloaded {
        return Verdict::Ignored;
    }
    Verdict::Counted {
        failed: outcome.is_failure(),
        slow: shared
            .slow_call_duration
            .is_some_and(|threshold| elapsed >= threshold),
    }
}

impl OnCompletion for BreakerPermit {
    /// Records the completion of the call's response body ([`complete`](Self::complete)); this is
    /// how a [`BreakerBody`](super::BreakerBody) reports without allocating.
    fn on_completion(self, completion: Completion) {
        self.complete(&completion);
    }
}
