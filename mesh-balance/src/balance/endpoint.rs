//! What the balancer knows about one endpoint, and the ticket a request carries to report back.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use mesh_core::Endpoint;
use mesh_core::classify::{Completion, OnCompletion, Outcome};
use tokio::time::Instant;

use crate::eject::{EndpointHealth, OutlierShared};
use crate::load::{EndpointLoad, LoadStrategy};
use crate::locality::TIERS;
use crate::metrics::{BalanceMetrics, EndpointMetrics};
use crate::slow_start::SlowStart;

/// Requests in flight per locality tier (by the tier they were picked in), shared by a
/// balancer's endpoints; kept only in hash mode, where bounded load needs the tier's total without
/// a scan.
pub(crate) type TierInFlight = [AtomicU64; TIERS];

/// The settings an endpoint's requests read when they end, outside the balancer's lock: shared by
/// every endpoint of one balancer and kept in atomics, so that a
/// [reconfiguration](super::Balance::reconfigure) reaches requests already in flight without a
/// lock on their path.
#[derive(Debug)]
pub(crate) struct LiveTuning {
    /// The PeakEWMA time constant samples are averaged with, in nanoseconds.
    decay: AtomicU64,
    /// Slow start's [`cold_after`](SlowStart::cold_after) in nanoseconds; `u64::MAX` while slow
    /// start is off (nothing is ever cold).
    cold_after: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl LiveTuning {
    pub(crate) fn new(strategy: &LoadStrategy, slow_start: &SlowStart) -> Self {
        let tuning = Self {
            decay: AtomicU64::new(nanos(Duration::from_secs(10))),
            cold_after: AtomicU64::new(u64::MAX),
        };
        tuning.set(strategy, slow_start);
        tuning
    }

    /// Takes the decay of a PeakEWMA `strategy` (another strategy keeps the current one: its
    /// estimates are still kept, for the status report) and `slow_start`'s cold threshold.
    pub(crate) fn set(&self, strategy: &LoadStrategy, slow_start: &SlowStart) {
        if let LoadStrategy::PeakEwma(c) = strategy {
            self.decay.store(nanos(c.decay), Ordering::Relaxed);
        }
        let cold = if slow_start.is_enabled() {
            nanos(slow_start.cold_after)
        } else {
            u64::MAX
        };
        self.cold_after.store(cold, Ordering::Relaxed);
    }

    fn decay(&self) -> Duration {
        Duration::from_nanos(self.decay.load(Ordering::Relaxed))
    }

    fn is_cold_after(&self, out: Duration) -> bool {
        let cold = self.cold_after.load(Ordering::Relaxed);
        cold != u64::MAX && nanos(out) >= cold
    }
}

/// Load, health and weight of one endpoint, shared by the balancer and the endpoint's in-flight
/// requests (which may outlive its removal from discovery).
#[derive(Debug)]
pub(crate) struct EndpointState {
    pub(crate) load: EndpointLoad,
    pub(crate) health: EndpointHealth,
    pub(crate) metrics: EndpointMetrics,
    weight: AtomicU32,
    /// Decay and slow start's cold threshold, shared with the balancer's other endpoints.
    tuning: Arc<LiveTuning>,
    /// When discovery first inserted the endpoint.
    added_at: Instant,
    /// The start of the slow-start ramp, in nanoseconds after `added_at`: 0 at first, moved to
    /// the moment the endpoint came back cold (see [`back_in_rotation`](Self::back_in_rotation)).
    /// An atomic, because a probe's outcome brings an endpoint back outside the balancer's lock.
    ramp_offset: AtomicU64,
    /// Hash mode only: the balancer's in-flight count per tier.
    tier_in_flight: Option<Arc<TierInFlight>>,
}

impl EndpointState {
    pub(crate) fn new(
        endpoint: &Endpoint,
        strategy: &LoadStrategy,
        tuning: Arc<LiveTuning>,
        outliers: Arc<OutlierShared>,
        metrics: Arc<BalanceMetrics>,
        tier_in_flight: Option<Arc<TierInFlight>>,
        now: Instant,
    ) -> Self {
        let default_rtt = match strategy {
            LoadStrategy::PeakEwma(c) => c.default_rtt,
            _ => Duration::ZERO,
        };
        Self {
            load: EndpointLoad::new(default_rtt, now),
            health: EndpointHealth::new(outliers, now, endpoint.addr()),
            metrics: EndpointMetrics::new(metrics, endpoint.addr()),
            weight: AtomicU32::new(endpoint.weight().get()),
            tuning,
            added_at: now,
            ramp_offset: AtomicU64::new(0),
            tier_in_flight,
        }
    }

    pub(crate) fn set_weight(&self, endpoint: &Endpoint) {
        self.weight
            .store(endpoint.weight().get(), Ordering::Relaxed);
    }

    /// The endpoint is back in rotation after `out` out of it (ejected, or not ready): if that
    /// is long enough for it to have gone cold, its slow-start ramp starts again at `now`.
    pub(crate) fn back_in_rotation(&self, out: Duration, now: Instant) {
        if !self.tuning.is_cold_after(out) {
            return;
        }
        let offset = now.saturating_duration_since(self.added_at).as_nanos();
        self.ramp_offset
            .store(u64::try_from(offset).unwrap_or(u64::MAX), Ordering::Relaxed);
        tracing::debug!(
            out_ms = out.as_millis() as u64,
            "endpoint back cold: slow start again"
        );
    }

    /// The weight the cost is divided by: the endpoint's weight, scaled by the slow-start factor
    /// while the endpoint is new or back cold. The one place weights are read. Never zero (a 0 %
    /// slow-start floor would otherwise make the cost infinite or NaN): at least a millionth.
    pub(crate) fn effective_weight(&self, slow_start: &SlowStart, now: Instant) -> f64 {
        let weight = f64::from(self.weight.load(Ordering::Relaxed).max(1));
        let ramp = Duration::from_nanos(self.ramp_offset.load(Ordering::Relaxed));
        let since = now
            .saturating_duration_since(self.added_at)
            .saturating_sub(ramp);
        (weight * slow_start.factor(since)).max(1e-6)
    }

    /// The RTT estimate as the pick sees it at `now`.
    pub(crate) fn rtt(&self, now: Instant) -> Duration {
        self.load.rtt(now, self.tuning.decay())
    }

    /// The cost of sending this endpoint one more request.
    pub(crate) fn cost(
        &self,
        strategy: &LoadStrategy,
        slow_start: &SlowStart,
        now: Instant,
    ) -> f64 {
        self.load.cost(strategy, now) / self.effective_weight(slow_start, now)
    }

    /// The load strategy changed to `strategy`: an estimate with no sample yet starts over from
    /// the new PeakEWMA `default_rtt` (or from zero under another strategy, which does not read
    /// it); a measured one, the pending count and everything else are kept.
    pub(crate) fn adapt_load(&self, strategy: &LoadStrategy, now: Instant) {
        let initial = match strategy {
            LoadStrategy::PeakEwma(c) => c.default_rtt,
            _ => Duration::ZERO,
        };
        self.load.reseed(initial, now);
    }
}

/// The balancer's bookkeeping for one request, carried from the pick to the end of the response
/// body, where it reports exactly once: the request stops counting as pending on its endpoint, its
/// round-trip time becomes a load sample, and its outcome feeds the endpoint's outlier gate.
///
/// It appears in the public API only as the completion callback of a [`MeasuredBody`]
/// (an [`ObservedBody`](mesh_core::classify::ObservedBody) whose callback is this ticket); it has
/// no public constructor or methods. A ticket costs no allocation: it holds one reference count on
/// the endpoint's state.
///
/// Dropped before the request was sent (a reservation given back unused), it only returns a
/// claimed probe. Dropped after it without an outcome, or completed with
/// [`Completion::Cancelled`], the request was cancelled: it ends as pending, but tells the outlier
/// gate nothing.
///
/// [`MeasuredBody`]: super::MeasuredBody
pub struct EndpointTicket {
    state: Arc<EndpointState>,
    probe: bool,
    /// Locality route of the request, for `mesh.balance.requests`.
    route: u8,
    started: Option<Instant>,
    done: bool,
}

impl EndpointTicket {
    pub(crate) fn new(state: Arc<EndpointState>, probe: bool, route: u8) -> Self {
        Self {
            state,
            probe,
            route,
            started: None,
            done: false,
        }
    }

    /// The request is being sent: it is pending from now on.
    pub(crate) fn start(&mut self) {
        self.state.load.start();
        self.count_in_tier(true);
        self.state.metrics.in_flight(1);
        self.state.metrics.shared().request_sent(self.route);
        self.started = Some(mesh_core::time::now());
    }

    /// The request ended with `outcome` (`None`: cancelled).
    pub(crate) fn complete(&mut self, outcome: Option<&Outcome>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        match self.started {
            Some(started) => {
                let now = mesh_core::time::now();
                let sample = outcome.map(|_| (now.saturating_duration_since(started), now));
                self.state.load.end(sample, self.state.tuning.decay());
                self.count_in_tier(false);
                self.state.metrics.in_flight(-1);
                if let Some(out) = self.state.health.record(outcome, self.probe, now) {
                    self.state.back_in_rotation(out, now);
                }
            }
            None if self.probe => self.state.health.release_probe(mesh_core::time::now()),
            None => {}
        }
    }
}

impl EndpointTicket {
    fn count_in_tier(&self, started: bool) {
        if let Some(counts) = &self.state.tier_in_flight {
            // The route encodes the tier the request was picked in (see `metrics::route`).
            let count = &counts[usize::from(self.route / 2) % TIERS];
            if started {
                count.fetch_add(1, Ordering::Relaxed);
            } else {
                count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl OnCompletion for EndpointTicket {
    /// Ends the request: `Finished` with its outcome, `Cancelled` as a cancellation.
    fn on_completion(mut self, completion: Completion) {
        self.complete(completion.outcome());
    }
}

impl Drop for EndpointTicket {
    fn drop(&mut self) {
        self.complete(None);
    }
}

impl fmt::Debug for EndpointTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointTicket")
            .field("probe", &self.probe)
            .field("started", &self.started.is_some())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
