//! The balancer's shared state: the endpoint set, discovery, and the pick.
//!
//! Everything here runs under the balancer's mutex, in short, non-blocking sections: polling the
//! discovery stream, polling endpoint services for readiness, and sampling. Outcomes are recorded
//! outside it, into each endpoint's own [`EndpointState`].
//!
//! The state is one struct, [`Core`]; its methods are grouped by concern, one file each:
//! `discovery` applies the discovery stream to the endpoint set, `readiness` polls endpoint
//! services and keeps the tier loads and panic mode current, `pick` is the balanced pick (locality
//! tier, then P2C or round robin) and `ring` the consistent-hash pick.

mod discovery;
mod pick;
mod readiness;
mod ring;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Waker;

use mesh_core::{BoxError, Endpoint, EndpointKey, Proximity};
use tokio::time::{Instant, Sleep};
use tower::discover::Discover;

use super::endpoint::{EndpointState, EndpointTicket, LiveTuning, TierInFlight};
use super::waiters::Waiters;
use super::{BalanceConfig, BalanceStatus, ConfigError, EndpointStatus, MakeEndpoint};
use crate::eject::{Admission, OutlierShared};
use crate::hash::{HashRing, RingConfig};
use crate::locality::{TIERS, TierSource};
use crate::metrics::{BalanceMetrics, ReportedCounts};

/// A ready endpoint service taken out of the set for one request, with the ticket the request
/// reports through.
#[derive(Debug)]
pub(crate) struct Picked<S> {
    pub(crate) service: S,
    pub(crate) ticket: EndpointTicket,
    /// The endpoint, and the locality tier it was picked in: hashing stays in that tier.
    pub(crate) key: EndpointKey,
    pub(crate) tier: usize,
}

#[derive(Debug)]
struct Slot<S> {
    key: EndpointKey,
    endpoint: Endpoint,
    service: S,
    /// `false` once `poll_ready` returned `Pending` (or before the first poll): skipped by the pick
    /// and re-polled when the set is woken. `true` does not mean polled: the slot's service is a
    /// fresh clone after every pick, and is polled when picked.
    ready: bool,
    /// When a poll last found the service not ready, while `ready` is false (`None` for a new
    /// endpoint): the length of the spell decides whether it comes back cold (slow start).
    unready_since: Option<Instant>,
    /// `None`: outside the allowed failover regions, never used.
    tier: Option<usize>,
    /// Discovery marked it draining: kept (its service, state and requests in flight) but left
    /// out of every tier list, the tier loads and the ring, so no pick can choose it.
    draining: bool,
    state: Arc<EndpointState>,
}

pub(crate) struct Core<D, M: MakeEndpoint> {
    discover: Pin<Box<D>>,
    discover_done: bool,
    make: M,
    slots: Vec<Slot<M::Service>>,
    index: HashMap<EndpointKey, usize>,
    tiers: [Vec<usize>; TIERS],
    loads: [f64; TIERS],
    /// The best non-empty tier; requests sent elsewhere count as spilled over.
    best: usize,
    /// When the earliest ejected endpoint of a tier that gets no traffic (load 0: all of it
    /// ejected) may take its probe: such a tier is never drawn, so the pick looks for its probes
    /// itself (see `pick_dormant_probe`). `None`: no such endpoint.
    dormant_probe_at: Option<Instant>,
    panic: bool,
    /// `(topology, outlier generation)` the tier loads were computed at.
    seen: (u64, u64),
    topology: u64,
    unready: usize,
    /// Unready slots hold a service never polled (new or rebuilt): poll them next time.
    repoll: bool,
    /// Since when no pick has succeeded; cleared by every successful pick.
    pub(crate) unready_since: Option<Instant>,
    rng: fastrand::Rng,
    cursor: usize,
    config: BalanceConfig,
    /// What in-flight requests read of `config` when they end (decay, cold threshold).
    tuning: Arc<LiveTuning>,
    outliers: Arc<OutlierShared>,
    waiters: Arc<Waiters>,
    /// Fires at the earliest ejection expiry while callers wait, through the shared waker: an
    /// ejected endpoint becoming probe-able is a change nothing else would wake them for.
    expiry: Option<Pin<Box<Sleep>>>,
    reported: ReportedCounts,
    /// Hash mode only: the ring over the endpoints not draining, as of set version
    /// `ring_version`, rebuilt outside the lock by the first hashed request after the set changed
    /// (see [`RingJob`](ring::RingJob)).
    ring: Option<HashRing>,
    /// The slot index of each ring index.
    ring_slots: Vec<usize>,
    ring_config: Option<RingConfig>,
    ring_version: u64,
    /// Bumped by every change of the endpoint set (insert, update, removal).
    set_version: u64,
    /// A caller is building the ring for the current set: others do not start another.
    ring_building: bool,
    /// Hash mode only: requests in flight per tier, kept by the tickets.
    tier_in_flight: Option<Arc<TierInFlight>>,
    /// Summed weight of the endpoints in rotation (panic: ready) per tier, as of the last
    /// `refresh_loads`: the `Σw` bounded load shares capacity over.
    tier_weight: [u64; TIERS],
}

impl<D, M: MakeEndpoint> std::fmt::Debug for Core<D, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("endpoints", &self.slots.len())
            .field("unready", &self.unready)
            .field("panic", &self.panic)
            .finish_non_exhaustive()
    }
}

impl<D, M> Core<D, M>
where
    D: Discover<Key = EndpointKey, Service = Endpoint>,
    D::Error: Into<BoxError>,
    M: MakeEndpoint,
{
    pub(crate) fn new(discover: D, make: M, config: BalanceConfig, waiters: Arc<Waiters>) -> Self {
        let seed = config.seed.unwrap_or_else(|| fastrand::Rng::new().u64(..));
        // A distinct stream for ejection jitter, so outcomes recorded from other threads do not
        // shift the sampling sequence.
        let by_priority = config.locality.tiers == TierSource::Priority;
        let metrics =
            BalanceMetrics::new(config.meter.as_ref(), config.name.as_deref(), by_priority);
        let outliers = Arc::new(OutlierShared::new(
            config.outliers,
            seed ^ 0x9e37_79b9_7f4a_7c15,
            metrics.clone(),
            Waker::from(waiters.clone()),
        ));
        let ring_config = config.hash.as_ref().map(|h| h.ring.clone());
        let tuning = Arc::new(LiveTuning::new(&config.load, &config.slow_start));
        Self {
            discover: Box::pin(discover),
            discover_done: false,
            make,
            slots: Vec::new(),
            index: HashMap::new(),
            tiers: Default::default(),
            loads: [0.0; TIERS],
            best: 0,
            dormant_probe_at: None,
            panic: false,
            seen: (u64::MAX, u64::MAX),
            topology: 0,
            unready: 0,
            repoll: false,
            unready_since: None,
            rng: fastrand::Rng::with_seed(seed),
            cursor: 0,
            config,
            tuning,
            outliers,
            waiters,
            expiry: None,
            reported: ReportedCounts::new(metrics),
            ring: None,
            ring_slots: Vec::new(),
            tier_in_flight: ring_config.as_ref().map(|_| Arc::new(Default::default())),
            ring_config,
            ring_version: u64::MAX,
            set_version: 0,
            ring_building: false,
            tier_weight: [0; TIERS],
        }
    }

    /// See [`Balance::reconfigure`](super::Balance::reconfigure); `config` is valid. Fails, and
    /// changes nothing, when `config` would change hash mode or its key.
    pub(crate) fn reconfigure(
        &mut self,
        config: BalanceConfig,
        now: Instant,
    ) -> Result<(), ConfigError> {
        let old_key = self.config.hash.as_ref().map(|h| &h.key);
        if old_key != config.hash.as_ref().map(|h| &h.key) {
            return Err(ConfigError::new(
                "hash",
                "cannot change on a running balancer (turning hashing on or off, or its key); \
                 build a new balancer",
            ));
        }
        let BalanceConfig {
            load,
            fail_fast_after,
            max_waiters,
            max_in_flight,
            outliers,
            locality,
            slow_start,
            hash,
            // Kept from the first configuration, as documented: the instruments, the random
            // streams and the handles were made from them.
            seed: _,
            meter: _,
            name: _,
        } = config;
        if load != self.config.load {
            for slot in &self.slots {
                slot.state.adapt_load(&load, now);
            }
        }
        self.tuning.set(&load, &slow_start);
        if outliers != self.config.outliers {
            self.outliers.set_config(outliers);
            if !outliers.enabled {
                for slot in &self.slots {
                    slot.state.health.reinstate(now);
                }
            }
        }
        let ring_config = hash.map(|h| h.ring);
        if ring_config != self.ring_config {
            self.ring_config = ring_config;
            // A ring being built meanwhile is for the old settings: its version is now stale.
            self.set_version = self.set_version.wrapping_add(1);
        }
        let relocate = locality != self.config.locality;
        tracing::info!(
            name = self.config.name.as_deref().unwrap_or(""),
            load = ?load,
            tiers = ?locality.tiers,
            outliers_enabled = outliers.enabled,
            slow_start = ?slow_start.window,
            fail_fast_after_ms = fail_fast_after.as_millis() as u64,
            max_waiters,
            "balancer reconfigured"
        );
        self.config.load = load;
        self.config.fail_fast_after = fail_fast_after;
        self.config.max_waiters = max_waiters;
        self.config.max_in_flight = max_in_flight;
        self.config.outliers = outliers;
        self.config.locality = locality;
        self.config.slow_start = slow_start;
        if relocate {
            self.reported.metrics().start_routes(self.by_priority());
            for slot in &mut self.slots {
                slot.tier = self.config.locality.tier_of(&slot.endpoint);
            }
            self.topology_changed();
        }
        // Panic mode, tier loads and round-robin turns are recomputed at the next pick.
        self.seen = (u64::MAX, u64::MAX);
        self.cursor = 0;
        // A waiting caller may be able to pick now (locality no longer strict, say).
        self.waiters.wake_all();
        Ok(())
    }

    /// The balancer's instruments (and its count of requests in flight).
    pub(crate) fn metrics(&self) -> Arc<crate::metrics::BalanceMetrics> {
        self.reported.metrics().clone()
    }

    pub(crate) fn status(&self) -> BalanceStatus {
        BalanceStatus {
            endpoints: self.slots.len(),
            ready: self.slots.len() - self.unready,
            ejected: self.outliers.ejected(),
            draining: self.slots.iter().filter(|slot| slot.draining).count(),
            panic: self.panic,
        }
    }

    /// One line per endpoint, in the set's internal order (which changes as endpoints leave).
    pub(crate) fn endpoints(&self, now: Instant) -> Vec<EndpointStatus> {
        const PROXIMITY: [Proximity; TIERS] = [
            Proximity::Subzone,
            Proximity::Zone,
            Proximity::Region,
            Proximity::Any,
        ];
        (self.slots.iter())
            .map(|slot| EndpointStatus {
                key: slot.key,
                addr: slot.endpoint.addr(),
                weight: slot.endpoint.weight(),
                tier: slot.tier.map(|t| PROXIMITY[t]),
                tier_index: slot.tier,
                priority: slot.endpoint.priority(),
                draining: slot.draining,
                ready: slot.ready,
                in_flight: slot.state.load.pending(),
                rtt: slot.state.rtt(now),
                outlier: slot.state.health.outlier_status(),
            })
            .collect()
    }

    /// Whether tiers are priorities rather than proximity.
    fn by_priority(&self) -> bool {
        self.config.locality.tiers == TierSource::Priority
    }

    fn eligible(&self, i: usize, now: Instant) -> Option<Admission> {
        if !self.slots[i].ready || self.slots[i].draining {
            return None;
        }
        match self.admission(i, now) {
            Admission::Closed => None,
            admission => Some(admission),
        }
    }

    /// What the outlier gate of slot `i` admits, panic mode included: in panic an ejected
    /// endpoint is used anyway (`Open`), except that once its ejection is over its next request
    /// is still its probe, so that panic traffic can bring it back (see the
    /// [eject module](crate::eject)).
    fn admission(&self, i: usize, now: Instant) -> Admission {
        match self.slots[i].state.health.admission(now) {
            Admission::Closed if self.panic => Admission::Open,
            admission => admission,
        }
    }
}
