//! The per-endpoint outlier gate and the state all gates of one balancer share.

use mesh_core::time::deadline_after;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use mesh_core::classify::Outcome;
use tokio::time::Instant;

use super::OutlierConfig;
use crate::balance::OutlierStatus;
use crate::load::lock;
use crate::metrics::{BalanceMetrics, EjectionReason};

/// What every gate of one balancer shares: the config, the ejection count that enforces
/// `max_ejected_share`, and a generation number bumped on every ejection or return, so the
/// balancer knows when its cached health counts are stale.
///
/// The config can be replaced while requests run ([`set_config`](Self::set_config)). Each gate
/// keeps its own copy, under the lock it takes for every outcome anyway, and refreshes it when
/// `config_version` moved: recording an outcome takes no lock beyond the gate's own.
#[derive(Debug)]
pub(crate) struct OutlierShared {
    config: Mutex<OutlierConfig>,
    /// Bumped by every [`set_config`](Self::set_config).
    config_version: AtomicU64,
    ejected: AtomicUsize,
    total: AtomicUsize,
    generation: AtomicU64,
    rng: Mutex<fastrand::Rng>,
    metrics: Arc<BalanceMetrics>,
    /// Wakes the balancer's waiting callers when an endpoint may be picked again (back in
    /// rotation, or its probe slot given back): outcomes arrive outside the balancer's polls.
    wake: Waker,
}

impl OutlierShared {
    pub(crate) fn new(
        config: OutlierConfig,
        seed: u64,
        metrics: Arc<BalanceMetrics>,
        wake: Waker,
    ) -> Self {
        Self {
            config: Mutex::new(config),
            config_version: AtomicU64::new(0),
            ejected: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            metrics,
            wake,
        }
    }

    /// The current config, and its version.
    fn current(&self) -> (OutlierConfig, u64) {
        let config = lock(&self.config);
        (*config, self.config_version.load(Ordering::Acquire))
    }

    /// Replaces the config: every gate uses it from its next outcome on. Ejections in force keep
    /// the length they were given; the bounds apply to the next ejection.
    pub(crate) fn set_config(&self, config: OutlierConfig) {
        let mut current = lock(&self.config);
        *current = config;
        self.config_version.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn set_total(&self, total: usize) {
        self.total.store(total, Ordering::Relaxed);
    }

    pub(crate) fn ejected(&self) -> usize {
        self.ejected.load(Ordering::Relaxed)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Takes one ejection slot if both bounds allow it: at most `floor(share × total)` ejected, and
    /// at least one endpoint never ejected.
    fn try_take_slot(&self, config: &OutlierConfig) -> bool {
        let total = self.total.load(Ordering::Relaxed);
        let cap = (config.max_ejected_share * total as f64).floor() as usize;
        let cap = cap.min(total.saturating_sub(1));
        self.ejected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok()
    }

    fn give_back_slot(&self) {
        let _ = self
            .ejected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// `base × times`, capped, with jitter; the jitter never takes it above the cap.
    fn ejection_length(&self, c: &OutlierConfig, times: u32) -> Duration {
        let plain = c
            .base_ejection
            .saturating_mul(times.max(1))
            .min(c.max_ejection);
        let spread = lock(&self.rng).f64() * 2.0 - 1.0;
        // Through f64 with a fallible conversion: `mul_f64` panics if a huge configured maximum
        // overflows once jittered upward.
        let factor = (1.0 + c.jitter * spread).max(0.0);
        Duration::try_from_secs_f64(plain.as_secs_f64() * factor)
            .unwrap_or(Duration::MAX)
            .min(c.max_ejection)
    }
}

/// Whether the gate lets a request through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// In rotation.
    Open,
    /// Ejected, its time is up, and no probe is in flight: one request may probe.
    Probe,
    /// Ejected (or probing).
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    InRotation,
    Ejected { until: Instant },
    Probing,
}

#[derive(Debug)]
struct HealthState {
    gate: Gate,
    consecutive: u32,
    window_start: Instant,
    window_requests: u32,
    window_failures: u32,
    /// The ejection multiplier: grows by one at each ejection, and shrinks by one for every
    /// `multiplier_decay` spent in rotation since `returned_at`.
    times_ejected: u32,
    /// When the endpoint last came back into rotation.
    returned_at: Option<Instant>,
    /// When the current spell out of rotation began (its first ejection; a failed probe does not
    /// move it).
    out_since: Instant,
    removed: bool,
    /// This gate's copy of the shared config, as of `config_version`.
    config: OutlierConfig,
    config_version: u64,
}

/// The ejection multiplier of an endpoint in rotation, less one for every whole
/// `multiplier_decay` it has spent in rotation since it came back.
fn decayed(state: &HealthState, config: &OutlierConfig, now: Instant) -> u32 {
    let Some(back) = state.returned_at else {
        return state.times_ejected;
    };
    let step = config.multiplier_decay.as_nanos().max(1);
    let steps = now.saturating_duration_since(back).as_nanos() / step;
    let steps = u32::try_from(steps).unwrap_or(u32::MAX);
    state.times_ejected.saturating_sub(steps)
}

/// One endpoint's outlier gate; see the [module docs](super).
#[derive(Debug)]
pub(crate) struct EndpointHealth {
    /// Mirrors `gate != InRotation`, so the common case is one atomic load.
    ejected: AtomicBool,
    state: Mutex<HealthState>,
    shared: Arc<OutlierShared>,
    /// For the log lines.
    endpoint: std::net::SocketAddr,
}

enum Verdict {
    Good,
    Bad,
    Neutral,
}

fn verdict(outcome: Option<&Outcome>) -> Verdict {
    match outcome {
        Some(Outcome::Success) => Verdict::Good,
        Some(Outcome::Failure(class)) if !class.is_overloaded() => Verdict::Bad,
        _ => Verdict::Neutral,
    }
}

impl EndpointHealth {
    pub(crate) fn new(
        shared: Arc<OutlierShared>,
        now: Instant,
        endpoint: std::net::SocketAddr,
    ) -> Self {
        let (config, config_version) = shared.current();
        Self {
            ejected: AtomicBool::new(false),
            state: Mutex::new(HealthState {
                gate: Gate::InRotation,
                consecutive: 0,
                window_start: now,
                window_requests: 0,
                window_failures: 0,
                times_ejected: 0,
                returned_at: None,
                out_since: now,
                removed: false,
                config,
                config_version,
            }),
            shared,
            endpoint,
        }
    }

    pub(crate) fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Acquire)
    }

    pub(crate) fn admission(&self, now: Instant) -> Admission {
        if !self.is_ejected() {
            return Admission::Open;
        }
        match lock(&self.state).gate {
            Gate::InRotation => Admission::Open,
            Gate::Ejected { until } if until <= now => Admission::Probe,
            Gate::Ejected { .. } | Gate::Probing => Admission::Closed,
        }
    }

    /// When an ejected endpoint's time is up (it may be probed from then on); `None` when it is in
    /// rotation or its probe is in flight.
    pub(crate) fn ejected_until(&self) -> Option<Instant> {
        if !self.is_ejected() {
            return None;
        }
        match lock(&self.state).gate {
            Gate::Ejected { until } => Some(until),
            Gate::InRotation | Gate::Probing => None,
        }
    }

    /// Where the gate stands, for a status report.
    pub(crate) fn outlier_status(&self) -> OutlierStatus {
        match lock(&self.state).gate {
            Gate::InRotation => OutlierStatus::InRotation,
            Gate::Ejected { until } => OutlierStatus::Ejected { until },
            Gate::Probing => OutlierStatus::Probing,
        }
    }

    /// Claims the single probe of an ejected endpoint whose time is up.
    pub(crate) fn claim_probe(&self, now: Instant) -> bool {
        let mut state = lock(&self.state);
        match state.gate {
            Gate::Ejected { until } if until <= now => {
                state.gate = Gate::Probing;
                true
            }
            _ => false,
        }
    }

    /// Gives an unused or undecided probe back: the next pick may probe again.
    pub(crate) fn release_probe(&self, now: Instant) {
        let mut state = lock(&self.state);
        if state.gate == Gate::Probing {
            state.gate = Gate::Ejected { until: now };
            drop(state);
            // A changed gate: the balancer recomputes what it caches about probes.
            self.shared.bump();
            self.shared.wake.wake_by_ref();
        }
    }

    /// Feeds one request's outcome (`None`: cancelled) into the detectors. When this outcome put
    /// the endpoint back in rotation (a successful probe), returns how long it was out.
    pub(crate) fn record(
        &self,
        outcome: Option<&Outcome>,
        probe: bool,
        now: Instant,
    ) -> Option<Duration> {
        let mut state = lock(&self.state);
        if state.config_version != self.shared.config_version.load(Ordering::Acquire) {
            (state.config, state.config_version) = self.shared.current();
        }
        let config = state.config;
        if state.removed || !config.enabled {
            return None;
        }
        let verdict = verdict(outcome);
        if probe && state.gate == Gate::Probing {
            let mut returned = None;
            match verdict {
                Verdict::Good => {
                    returned = Some(now.saturating_duration_since(state.out_since));
                    self.return_to_rotation(&mut state, now);
                }
                Verdict::Bad => {
                    self.eject(&mut state, &config, now, EjectionReason::Probe);
                    return None;
                }
                Verdict::Neutral => {
                    state.gate = Gate::Ejected { until: now };
                    self.shared.bump();
                }
            }
            // The endpoint can be picked again (in rotation, or probed anew).
            drop(state);
            self.shared.wake.wake_by_ref();
            return returned;
        }
        if state.gate != Gate::InRotation {
            // Requests sent before the ejection, or during it in panic mode, do not decide
            // anything: the ejection is served in full, and then the probe decides.
            return None;
        }
        if now.saturating_duration_since(state.window_start) >= config.failure_rate_window {
            state.window_start = now;
            state.window_requests = 0;
            state.window_failures = 0;
        }
        match verdict {
            Verdict::Neutral => return None,
            Verdict::Good => state.consecutive = 0,
            Verdict::Bad => {
                state.consecutive = state.consecutive.saturating_add(1);
                state.window_failures = state.window_failures.saturating_add(1);
            }
        }
        state.window_requests = state.window_requests.saturating_add(1);
        let consecutive =
            config.consecutive_failures > 0 && state.consecutive >= config.consecutive_failures;
        let rate = config.failure_rate_min_requests > 0
            && state.window_requests >= config.failure_rate_min_requests
            && f64::from(state.window_failures)
                >= config.failure_rate * f64::from(state.window_requests);
        if (consecutive || rate) && self.shared.try_take_slot(&config) {
            state.times_ejected = decayed(&state, &config, now);
            let reason = if consecutive {
                EjectionReason::Consecutive
            } else {
                EjectionReason::Rate
            };
            self.eject(&mut state, &config, now, reason);
        }
        None
    }

    /// Ejects (again): the caller holds an ejection slot already.
    fn eject(
        &self,
        state: &mut HealthState,
        config: &OutlierConfig,
        now: Instant,
        reason: EjectionReason,
    ) {
        if state.gate == Gate::InRotation {
            state.out_since = now;
        }
        state.times_ejected = state.times_ejected.saturating_add(1);
        let until = deadline_after(
            now,
            self.shared.ejection_length(config, state.times_ejected),
        );
        state.gate = Gate::Ejected { until };
        state.consecutive = 0;
        state.window_start = now;
        state.window_requests = 0;
        state.window_failures = 0;
        self.ejected.store(true, Ordering::Release);
        self.shared.bump();
        self.shared.metrics.ejected(reason);
        tracing::info!(endpoint = %self.endpoint, times = state.times_ejected, ?reason, "endpoint ejected");
    }

    fn return_to_rotation(&self, state: &mut HealthState, now: Instant) {
        state.gate = Gate::InRotation;
        state.returned_at = Some(now);
        state.consecutive = 0;
        state.window_start = now;
        state.window_requests = 0;
        state.window_failures = 0;
        self.ejected.store(false, Ordering::Release);
        self.shared.give_back_slot();
        self.shared.bump();
        tracing::info!(endpoint = %self.endpoint, "endpoint back in rotation");
    }

    /// Ejection was turned off: an ejected or probing endpoint is put back in rotation at once
    /// (with detection off no probe would ever be judged). Its ejection multiplier is kept.
    pub(crate) fn reinstate(&self, now: Instant) {
        let mut state = lock(&self.state);
        if state.removed || state.gate == Gate::InRotation {
            return;
        }
        self.return_to_rotation(&mut state, now);
        drop(state);
        self.shared.wake.wake_by_ref();
    }

    /// The endpoint left discovery: it frees its ejection slot and ignores late outcomes.
    pub(crate) fn remove(&self) {
        let mut state = lock(&self.state);
        if state.removed {
            return;
        }
        state.removed = true;
        if state.gate != Gate::InRotation {
            state.gate = Gate::InRotation;
            self.ejected.store(false, Ordering::Release);
            self.shared.give_back_slot();
            self.shared.bump();
        }
    }
}
