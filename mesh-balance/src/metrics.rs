//! The balancer's OpenTelemetry instruments; the names are documented in the crate docs.
//!
//! Instruments are created once per balancer and every attribute set is built before the first
//! request: per endpoint when discovery inserts it, per locality tier here. The two series a
//! request touches (`mesh.balance.endpoint.in_flight` of its endpoint, `mesh.balance.requests` of
//! its tier) are *bound* instruments (OpenTelemetry's `bind`, a 0.33 API feature marked
//! experimental): the SDK resolves the attribute set once, when the endpoint is inserted or the
//! tier first used, and a recording is then an atomic add on that series instead of hashing the
//! attribute set and looking it up on every request. The series, their values and their export are
//! the same as unbound recordings'. Nothing on the request path allocates.
//!
//! Every series is also *recorded* once, with 0, when its attribute set is built. A series that
//! first appears at its first increment has no earlier sample, so Prometheus' `increase()` and
//! `rate()` take that first increment as the baseline and lose it: six retries in a fresh series
//! would read as about one. Starting at 0 costs one `add` per series, at construction.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundCounter, BoundUpDownCounter, Counter, Meter, UpDownCounter};

use crate::locality::TIERS;

/// `mesh.balance.endpoints`: endpoints in the set, by state.
pub(crate) const ENDPOINTS: &str = "mesh.balance.endpoints";
/// `mesh.balance.ejections`: outlier ejections, by reason.
pub(crate) const EJECTIONS: &str = "mesh.balance.ejections";
/// `mesh.balance.panic.active`: balancers in panic mode.
pub(crate) const PANIC_ACTIVE: &str = "mesh.balance.panic.active";
/// `mesh.balance.panic.entries`: times a balancer entered panic mode.
pub(crate) const PANIC_ENTRIES: &str = "mesh.balance.panic.entries";
/// `mesh.balance.requests`: requests sent, by locality tier.
pub(crate) const REQUESTS: &str = "mesh.balance.requests";
/// `mesh.balance.endpoint.in_flight`: requests in flight per endpoint.
pub(crate) const IN_FLIGHT: &str = "mesh.balance.endpoint.in_flight";

const STATE: &str = "mesh.balance.endpoint.state";
const REASON: &str = "mesh.balance.ejection.reason";
const TIER: &str = "mesh.balance.locality.tier";
const SPILLED: &str = "mesh.balance.locality.spilled";
/// The balancer's [`name`](crate::BalanceConfig::name), on every series when it is set.
const NAME: &str = "mesh.balance.name";

/// The state an endpoint is counted in by `mesh.balance.endpoints`; the states partition the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndpointCount {
    /// Ready and not ejected: the pick may choose it.
    Ready = 0,
    /// Ejected by its outlier gate (whatever its readiness).
    Ejected = 1,
    /// Not ejected, but its service is not ready (or not polled yet).
    Unready = 2,
    /// Marked draining by discovery (whatever its readiness or gate): takes no new requests.
    Draining = 3,
}

const STATES: [(EndpointCount, &str); 4] = [
    (EndpointCount::Ready, "ready"),
    (EndpointCount::Ejected, "ejected"),
    (EndpointCount::Unready, "unready"),
    (EndpointCount::Draining, "draining"),
];

/// Which detector ejected an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EjectionReason {
    /// `consecutive_failures` failures in a row.
    Consecutive = 0,
    /// The failure-rate window.
    Rate = 1,
    /// The single probe after an ejection failed.
    Probe = 2,
}

const REASONS: [&str; 3] = ["consecutive", "rate", "probe"];
/// Tier names by proximity, then by priority ([`TierSource`](crate::locality::TierSource)).
const TIER_NAMES: [&str; TIERS * 2] = [
    "subzone",
    "zone",
    "region",
    "any",
    "priority-0",
    "priority-1",
    "priority-2",
    "priority-3+",
];

/// Every instrument of one balancer and the attribute sets that do not depend on an endpoint.
#[derive(Debug)]
pub(crate) struct BalanceMetrics {
    endpoints: UpDownCounter<i64>,
    ejections: Counter<u64>,
    panic_active: UpDownCounter<i64>,
    panic_entries: Counter<u64>,
    requests: Counter<u64>,
    in_flight: UpDownCounter<i64>,
    /// Requests in flight over every endpoint (what `max_in_flight` bounds), kept whether or not
    /// metrics are exported.
    total_in_flight: AtomicI64,
    /// The attributes every series of this balancer carries: its name, when it has one.
    balancer_attributes: Vec<KeyValue>,
    state_attributes: [Vec<KeyValue>; 4],
    reason_attributes: [Vec<KeyValue>; 3],
    /// Indexed by [`route`]: tier source × tier × spilled.
    route_attributes: [Vec<KeyValue>; TIERS * 4],
    /// `requests` bound to each of `route_attributes`, when the route is first used (binding
    /// creates the series, and the series of an unused tier source are not created).
    route_counters: [OnceLock<BoundCounter<u64>>; TIERS * 4],
}

/// `attributes` after the balancer's own (its name).
fn with_balancer(
    balancer: &[KeyValue],
    attributes: impl IntoIterator<Item = KeyValue>,
) -> Vec<KeyValue> {
    balancer.iter().cloned().chain(attributes).collect()
}

/// The index of a request's locality route in the `mesh.balance.requests` attribute sets. The
/// tier is `(route / 2) % TIERS` whatever the source.
pub(crate) fn route(tier: usize, spilled: bool, by_priority: bool) -> u8 {
    (usize::from(by_priority) * TIERS * 2 + tier * 2 + usize::from(spilled)) as u8
}

impl BalanceMetrics {
    /// Instruments from `meter`, or from the global provider's `mesh-balance` meter; every series
    /// carries `mesh.balance.name = name` when a name is given.
    /// The request series of tiers by priority start at zero only when priorities are in use
    /// (`by_priority`, or later [`start_routes`](Self::start_routes)).
    pub(crate) fn new(meter: Option<&Meter>, name: Option<&str>, by_priority: bool) -> Arc<Self> {
        let balancer: Vec<KeyValue> = name
            .map(|name| KeyValue::new(NAME, name.to_owned()))
            .into_iter()
            .collect();
        let global;
        let meter = match meter {
            Some(meter) => meter,
            None => {
                global = opentelemetry::global::meter("mesh-balance");
                &global
            }
        };
        let metrics = Self {
            endpoints: meter
                .i64_up_down_counter(ENDPOINTS)
                .with_description("Endpoints in the balancer's set, by state")
                .with_unit("{endpoint}")
                .build(),
            ejections: meter
                .u64_counter(EJECTIONS)
                .with_description("Endpoints ejected by their outlier gate, by detector")
                .with_unit("{ejection}")
                .build(),
            panic_active: meter
                .i64_up_down_counter(PANIC_ACTIVE)
                .with_description("Balancers currently in panic mode (ejection ignored)")
                .with_unit("{balancer}")
                .build(),
            panic_entries: meter
                .u64_counter(PANIC_ENTRIES)
                .with_description("Times a balancer entered panic mode")
                .with_unit("{entry}")
                .build(),
            requests: meter
                .u64_counter(REQUESTS)
                .with_description("Requests sent to an endpoint, by locality tier")
                .with_unit("{request}")
                .build(),
            in_flight: meter
                .i64_up_down_counter(IN_FLIGHT)
                .with_description("Requests in flight per endpoint, until the response body ends")
                .with_unit("{request}")
                .build(),
            total_in_flight: AtomicI64::new(0),
            state_attributes: STATES
                .map(|(_, name)| with_balancer(&balancer, [KeyValue::new(STATE, name)])),
            reason_attributes: REASONS
                .map(|name| with_balancer(&balancer, [KeyValue::new(REASON, name)])),
            route_attributes: std::array::from_fn(|i| {
                with_balancer(
                    &balancer,
                    [
                        KeyValue::new(TIER, TIER_NAMES[i / 2]),
                        KeyValue::new(SPILLED, i % 2 == 1),
                    ],
                )
            }),
            route_counters: std::array::from_fn(|_| OnceLock::new()),
            balancer_attributes: balancer,
        };
        metrics.start_at_zero();
        metrics.start_routes(by_priority);
        Arc::new(metrics)
    }

    /// Records 0 for every attribute set known in advance, so each series exists from the start
    /// (see the module docs).
    fn start_at_zero(&self) {
        for attributes in &self.state_attributes {
            self.endpoints.add(0, attributes);
        }
        for attributes in &self.reason_attributes {
            self.ejections.add(0, attributes);
        }
        self.panic_active.add(0, &self.balancer_attributes);
        self.panic_entries.add(0, &self.balancer_attributes);
    }

    /// Records 0 for the request series of one tier source (see the module docs).
    pub(crate) fn start_routes(&self, by_priority: bool) {
        let half = TIERS * 2;
        let start = usize::from(by_priority) * half;
        for attributes in &self.route_attributes[start..start + half] {
            self.requests.add(0, attributes);
        }
    }

    pub(crate) fn ejected(&self, reason: EjectionReason) {
        self.ejections
            .add(1, &self.reason_attributes[reason as usize]);
    }

    /// Requests in flight over every endpoint of this balancer.
    pub(crate) fn total_in_flight(&self) -> i64 {
        self.total_in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn request_sent(&self, route: u8) {
        let route = usize::from(route);
        self.route_counters[route]
            .get_or_init(|| self.requests.bind(&self.route_attributes[route]))
            .add(1);
    }
}

/// One endpoint's `mesh.balance.endpoint.in_flight` series (`server.address`, `server.port`),
/// bound once when it is inserted.
#[derive(Debug)]
pub(crate) struct EndpointMetrics {
    metrics: Arc<BalanceMetrics>,
    in_flight: BoundUpDownCounter<i64>,
}

impl EndpointMetrics {
    pub(crate) fn new(metrics: Arc<BalanceMetrics>, addr: std::net::SocketAddr) -> Self {
        let address = with_balancer(
            &metrics.balancer_attributes,
            [
                KeyValue::new("server.address", addr.ip().to_string()),
                KeyValue::new("server.port", i64::from(addr.port())),
            ],
        );
        let in_flight = metrics.in_flight.bind(&address);
        // The series starts at 0 when discovery inserts the endpoint (see the module docs).
        in_flight.add(0);
        Self { metrics, in_flight }
    }

    pub(crate) fn shared(&self) -> &BalanceMetrics {
        &self.metrics
    }

    pub(crate) fn in_flight(&self, delta: i64) {
        self.metrics
            .total_in_flight
            .fetch_add(delta, Ordering::Relaxed);
        self.in_flight.add(delta);
    }
}

/// What the balancer has reported to the up-down counters, so it reports changes as deltas and
/// takes its contribution back when it is dropped (several balancers may share a meter, so the
/// counters sum over all of them).
#[derive(Debug)]
pub(crate) struct ReportedCounts {
    metrics: Arc<BalanceMetrics>,
    endpoints: [i64; 4],
    panic: bool,
}

impl ReportedCounts {
    pub(crate) fn new(metrics: Arc<BalanceMetrics>) -> Self {
        Self {
            metrics,
            endpoints: [0; 4],
            panic: false,
        }
    }

    pub(crate) fn metrics(&self) -> &Arc<BalanceMetrics> {
        &self.metrics
    }

    /// Reports the current endpoint counts, indexed by [`EndpointCount`].
    pub(crate) fn endpoints(&mut self, counts: [i64; 4]) {
        for (i, (&new, old)) in counts.iter().zip(&mut self.endpoints).enumerate() {
            if new != *old {
                self.metrics
                    .endpoints
                    .add(new - *old, &self.metrics.state_attributes[i]);
                *old = new;
            }
        }
    }

    pub(crate) fn panic(&mut self, panic: bool) {
        if panic == std::mem::replace(&mut self.panic, panic) {
            return;
        }
        if panic {
            self.metrics
                .panic_active
                .add(1, &self.metrics.balancer_attributes);
            self.metrics
                .panic_entries
                .add(1, &self.metrics.balancer_attributes);
        } else {
            self.metrics
                .panic_active
                .add(-1, &self.metrics.balancer_attributes);
        }
    }
}

impl Drop for ReportedCounts {
    fn drop(&mut self) {
        self.endpoints([0; 4]);
        self.panic(false);
    }
}
