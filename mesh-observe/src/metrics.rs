//! The metric names this crate records, their bucket boundaries, and the table of every metric the
//! mesh-* workspace records.
//!
//! All instruments are created once per layer (or propagator) from the [`Meter`] in its
//! configuration and shared by its clones. Counters whose attributes form a closed set record 0 for
//! each of their series when they are created (here `mesh.trace_context.rejected`; in mesh-tls
//! `mesh.tls.authz.decisions` and `mesh.tls.identity.updates`), so that every series exists before
//! its first event: Prometheus' `increase()` cannot see the step to a series' first sample; recording a request allocates nothing in this module
//! (attributes are static strings, integers, or reference-counted strings carried by the request,
//! on a fixed-size stack array), except once per series when the SDK is in the build: the request
//! metrics then record through series bound to their attribute sets (see `ActiveRequests` and
//! `RequestDuration` in the source), which spares the SDK's hashing and lookup of the attribute
//! set on every recording and records the same series with the same values.
//!
//! # Every metric of the workspace
//!
//! Each crate records through the `opentelemetry` API on the meter its configuration names
//! (default: the global meter named after the crate). Attribute values are closed sets unless
//! stated; nothing carries a raw path or a per-request value. `server.address`/`server.port` are
//! bounded by the endpoints (balancer) or destinations (client) in use. A test
//! (`tests/metrics_table.rs`) fails when a crate records a `mesh.*` name missing from this table.
//!
//! | name | instrument, unit | attributes | recorded by |
//! |------|------------------|------------|-------------|
//! | `http.server.request.duration` | histogram, `s` ([`DURATION_BOUNDARIES`]) | `http.request.method`, `url.scheme`, `http.route`, `network.protocol.version`, `http.response.status_code`, `error.type` | mesh-observe `ServerTraceLayer` |
//! | `http.server.active_requests` | up-down counter, `{request}` | `http.request.method`, `url.scheme` | mesh-observe `ServerTraceLayer` |
//! | `http.client.request.duration` | histogram, `s` ([`DURATION_BOUNDARIES`]) | `http.request.method`, `url.scheme`, `server.address`, `server.port`, `network.protocol.version`, `http.response.status_code`, `error.type` | mesh-observe `ClientTraceLayer` |
//! | `http.client.active_requests` | up-down counter, `{request}` | `http.request.method`, `url.scheme` | mesh-observe `ClientTraceLayer` |
//! | `mesh.trace_context.rejected` | counter, `{header}` | `header` (`traceparent`, `tracestate`, `b3`, `x-b3`), `reason` ([`RejectReason`]) | mesh-observe layers and propagators |
//! | `mesh.balance.endpoints` | up-down counter, `{endpoint}` | `mesh.balance.endpoint.state`; every balancer series also carries `mesh.balance.name` when the balancer is named | mesh-balance |
//! | `mesh.balance.ejections` | counter, `{ejection}` | `mesh.balance.ejection.reason` (`consecutive`, `rate`, `probe`) | mesh-balance outlier gate |
//! | `mesh.balance.panic.active` | up-down counter, `{balancer}` | — | mesh-balance |
//! | `mesh.balance.panic.entries` | counter, `{entry}` | — | mesh-balance |
//! | `mesh.balance.requests` | counter, `{request}` | `mesh.balance.locality.tier` (`subzone`, `zone`, `region`, `any`), `mesh.balance.locality.spilled` | mesh-balance |
//! | `mesh.balance.endpoint.in_flight` | up-down counter | `server.address`, `server.port` | mesh-balance (until the body ends) |
//! | `mesh.balance.health.transitions` | counter, `{transition}` | `mesh.balance.health.state` | mesh-balance health checks |
//! | `mesh.balance.health.probes` | counter, `{probe}` | `mesh.balance.health.result` | mesh-balance health checks |
//! | `mesh.discovery.errors` | counter, `{error}` | `mesh.discovery.source` | mesh-balance discovery |
//! | `mesh.retry.retries` | counter, `{retry}` | `mesh.retry.reason` | mesh-retry retry |
//! | `mesh.retry.budget_exhausted` | counter, `{retry}` | `mesh.retry.reason` | mesh-retry retry |
//! | `mesh.retry.not_replayable` | counter, `{retry}` | `mesh.retry.replay_status` | mesh-retry retry |
//! | `mesh.hedge.sent` | counter, `{hedge}` | — | mesh-retry hedge |
//! | `mesh.hedge.won` | counter, `{hedge}` | — | mesh-retry hedge |
//! | `mesh.hedge.budget_exhausted` | counter, `{hedge}` | — | mesh-retry hedge |
//! | `mesh.timeout.expired` | counter, `{request}` | — | mesh-retry timeout |
//! | `mesh.timeout.grpc_timeout_malformed` | counter, `{request}` | — | mesh-retry timeout |
//! | `mesh.breaker.transitions` | counter, `{transition}` | `mesh.breaker.from`, `mesh.breaker.to`, `mesh.breaker.name` | mesh-retry circuit breaker |
//! | `mesh.breaker.state` | gauge, `{state}` (0 closed, 1 half-open, 2 open) | `mesh.breaker.name` | mesh-retry circuit breaker |
//! | `mesh.breaker.rejected` | counter, `{request}` | `mesh.breaker.name` | mesh-retry circuit breaker |
//! | `mesh.limit.rejected` | counter, `{request}` | `mesh.limit.kind`, `mesh.limit.name` | mesh-retry limits |
//! | `mesh.limit.concurrency` | gauge, `{request}` | `mesh.limit.kind`, `mesh.limit.name` | mesh-retry limits |
//! | `mesh.xds.stream.connected` | up-down counter, `{stream}` | — | mesh-xds (1 while the ADS stream is open) |
//! | `mesh.xds.streams` | counter, `{stream}` | — | mesh-xds (ADS streams opened; more than one = reconnects) |
//! | `mesh.xds.updates` | counter, `{update}` | `mesh.xds.type` (`cds`, `eds`, `other`), `mesh.xds.result` (`accepted`, `rejected`) | mesh-xds |
//! | `mesh.xds.version` | gauge, `{version}` (1 current, 0 replaced) | `mesh.xds.type`, `mesh.xds.version` | mesh-xds |
//! | `mesh.xds.update.time` | gauge, `s` (Unix time of the last accepted update) | `mesh.xds.type` | mesh-xds |
//! | `mesh.xds.endpoints` | gauge, `{endpoint}` | `mesh.xds.cluster`, `mesh.xds.priority` | mesh-xds (endpoints taking new requests, draining ones left out, per subscribed cluster and xDS priority) |
//! | `mesh.xds.ignored_fields` | counter, `{field}` | `mesh.xds.cluster`, `mesh.xds.field` | mesh-xds (an unsupported field set in a cluster or endpoint assignment, once per resource version) |
//! | `mesh.tls.authz.decisions` | counter | `decision` (`allow`, `deny`, `dry_run_deny`, `bad_request`) | mesh-tls authorization |
//! | `mesh.tls.identity.updates` | counter | `outcome` (`applied`, `rejected`), `reason` | mesh-tls file rotation |
//! | `mesh.tls.connections.closed` | counter | `reason` (`bundle_change`) | mesh-tls acceptor, connections closed because the peer no longer verifies after a bundle change |
//!
//! `mesh.breaker.name` and `mesh.limit.name` are names the application configures, one per
//! breaker or limit; `error.type` is mesh-core's [`Outcome::kind`](mesh_core::classify::Outcome::kind)
//! (`http_status`, `overloaded`, `grpc_status`, an error kind such as `timeout`) or `cancelled`.
//!
//! Spans carry one attribute outside the semantic conventions, never a metric attribute:
//! `mesh.peer.identity`, the peer's SPIFFE ID when mesh-tls verified one.

#[cfg(feature = "sdk")]
use std::sync::atomic::{AtomicUsize, Ordering};
#[cfg(feature = "sdk")]
use std::sync::{OnceLock, PoisonError, RwLock};

use http::StatusCode;
#[cfg(feature = "sdk")]
use opentelemetry::metrics::{BoundHistogram, BoundUpDownCounter};
use opentelemetry::metrics::{Counter, Histogram, Meter, UpDownCounter};
use opentelemetry::{KeyValue, StringValue};

use crate::propagation::{RejectReason, Rejection, TraceHeader};

/// Server request duration histogram, in seconds (OpenTelemetry HTTP semantic conventions).
pub const HTTP_SERVER_REQUEST_DURATION: &str = "http.server.request.duration";
/// Client request duration histogram, in seconds (OpenTelemetry HTTP semantic conventions).
pub const HTTP_CLIENT_REQUEST_DURATION: &str = "http.client.request.duration";
/// Server requests in flight, an up-down counter (OpenTelemetry HTTP semantic conventions).
pub const HTTP_SERVER_ACTIVE_REQUESTS: &str = "http.server.active_requests";
/// Client requests in flight, an up-down counter (OpenTelemetry HTTP semantic conventions).
pub const HTTP_CLIENT_ACTIVE_REQUESTS: &str = "http.client.active_requests";
/// Incoming trace headers ignored as malformed, oversized or repeated; a counter with attributes
/// `header` and `reason` (see [`Rejection`]).
pub const TRACE_CONTEXT_REJECTED: &str = "mesh.trace_context.rejected";

/// The request-duration bucket boundaries, in seconds, that the OpenTelemetry HTTP semantic
/// conventions recommend (`http.server.request.duration`): 5 ms to 10 s.
pub const DURATION_BOUNDARIES: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Every `header` × `reason` pair the parsers can report: the series of
/// [`TRACE_CONTEXT_REJECTED`] that are recorded at 0 when the counter is created.
const REJECTIONS: [(TraceHeader, RejectReason); 13] = {
    use RejectReason::*;
    use TraceHeader::*;
    [
        (Traceparent, Malformed),
        (Traceparent, Oversized),
        (Traceparent, Duplicate),
        (Traceparent, InvalidVersion),
        (Tracestate, Malformed),
        (Tracestate, Oversized),
        (Tracestate, TooManyMembers),
        (B3, Malformed),
        (B3, Oversized),
        (B3, Duplicate),
        (B3Multi, Malformed),
        (B3Multi, Oversized),
        (B3Multi, Duplicate),
    ]
};

/// Counts [`Rejection`]s in [`TRACE_CONTEXT_REJECTED`]. Clones share the instrument.
#[derive(Clone, Debug)]
pub(crate) struct RejectionCounter(Counter<u64>);

impl RejectionCounter {
    /// Creates the counter and records 0 for every pair in [`REJECTIONS`].
    ///
    /// Why the zeros: a counter series otherwise appears at its first increment, and Prometheus'
    /// `increase()` / `rate()` cannot count that first step (there is no earlier sample), so the
    /// first rejection of each kind would be missed and alerts on "any rejection" would not fire.
    /// Creating the counter again (one per layer or propagator) adds 0 again, which changes nothing.
    pub(crate) fn new(meter: &Meter) -> Self {
        let counter = Self(
            meter
                .u64_counter(TRACE_CONTEXT_REJECTED)
                .with_description("Incoming trace-context headers ignored as invalid")
                .with_unit("{header}")
                .build(),
        );
        for (header, reason) in REJECTIONS {
            counter.add(header, reason, 0);
        }
        counter
    }

    pub(crate) fn record(&self, rejection: Rejection) {
        self.add(rejection.header(), rejection.reason(), 1);
    }

    fn add(&self, header: TraceHeader, reason: RejectReason, n: u64) {
        let attributes = [
            KeyValue::new("header", header.as_str()),
            KeyValue::new("reason", reason.as_str()),
        ];
        self.0.add(n, &attributes);
    }
}

/// Which side of a request a layer observes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// The request instruments of one layer.
#[derive(Debug)]
pub(crate) struct RequestInstruments {
    pub(crate) duration: RequestDuration,
    pub(crate) active: ActiveRequests,
    pub(crate) rejected: RejectionCounter,
}

impl RequestInstruments {
    pub(crate) fn new(meter: &Meter, side: Side) -> Self {
        let (duration, active, what) = match side {
            Side::Server => (
                HTTP_SERVER_REQUEST_DURATION,
                HTTP_SERVER_ACTIVE_REQUESTS,
                "server",
            ),
            Side::Client => (
                HTTP_CLIENT_REQUEST_DURATION,
                HTTP_CLIENT_ACTIVE_REQUESTS,
                "client",
            ),
        };
        Self {
            duration: RequestDuration::new(
                meter
                    .f64_histogram(duration)
                    .with_description(format!("Duration of HTTP {what} requests"))
                    .with_unit("s")
                    .with_boundaries(DURATION_BOUNDARIES.to_vec())
                    .build(),
            ),
            active: ActiveRequests::new(
                meter
                    .i64_up_down_counter(active)
                    .with_description(format!("Number of active HTTP {what} requests"))
                    .with_unit("{request}")
                    .build(),
            ),
            rejected: RejectionCounter::new(meter),
        }
    }
}

/// The low-cardinality attributes shared by a request's metrics (and, at its end, its span).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct MetricAttributes {
    pub(crate) method: &'static str,
    pub(crate) scheme: Option<&'static str>,
    pub(crate) route: Option<StringValue>,
    pub(crate) server_address: Option<StringValue>,
    pub(crate) server_port: Option<i64>,
    pub(crate) protocol: Option<&'static str>,
}

/// How many attributes a duration point can carry: the six above, status code and `error.type`.
const MAX_ATTRIBUTES: usize = 8;

/// The attributes of one duration point, on a fixed-size array: returns it and how many of its
/// entries are used.
fn duration_attributes(
    attrs: &MetricAttributes,
    status: Option<StatusCode>,
    error_type: Option<&'static str>,
) -> ([KeyValue; MAX_ATTRIBUTES], usize) {
    let mut points: [KeyValue; MAX_ATTRIBUTES] = std::array::from_fn(|_| KeyValue::new("", ""));
    let mut n = 0;
    let mut push = |kv: KeyValue| {
        points[n] = kv;
        n += 1;
    };
    push(KeyValue::new("http.request.method", attrs.method));
    if let Some(scheme) = attrs.scheme {
        push(KeyValue::new("url.scheme", scheme));
    }
    if let Some(route) = &attrs.route {
        push(KeyValue::new("http.route", route.clone()));
    }
    if let Some(address) = &attrs.server_address {
        push(KeyValue::new("server.address", address.clone()));
    }
    if let Some(port) = attrs.server_port {
        push(KeyValue::new("server.port", port));
    }
    if let Some(protocol) = attrs.protocol {
        push(KeyValue::new("network.protocol.version", protocol));
    }
    if let Some(status) = status {
        push(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
    }
    if let Some(error_type) = error_type {
        push(KeyValue::new("error.type", error_type));
    }
    (points, n)
}

/// `http.*.active_requests` carries only attributes known when the request starts (method, and
/// `url.scheme` when the URI names it, as the duration histogram does).
fn active_attributes(method: &'static str, scheme: Option<&'static str>) -> ([KeyValue; 2], usize) {
    let method = KeyValue::new("http.request.method", method);
    match scheme {
        Some(scheme) => ([method, KeyValue::new("url.scheme", scheme)], 2),
        None => ([method, KeyValue::new("", "")], 1),
    }
}

/// Bound series of `http.*.active_requests`: the 10 method names
/// ([`method_name`](crate::recorder::method_name)'s values) × `url.scheme` `http`, `https` or
/// absent.
#[cfg(feature = "sdk")]
const ACTIVE_SLOTS: usize = 30;

/// The bound series of `method` and `scheme`; `None` for a method name
/// [`method_name`](crate::recorder::method_name) does not give.
#[cfg(feature = "sdk")]
fn active_slot(method: &str, scheme: Option<&str>) -> Option<usize> {
    let method = match method {
        "GET" => 0,
        "POST" => 1,
        "PUT" => 2,
        "DELETE" => 3,
        "HEAD" => 4,
        "OPTIONS" => 5,
        "PATCH" => 6,
        "CONNECT" => 7,
        "TRACE" => 8,
        "_OTHER" => 9,
        _ => return None,
    };
    let scheme = match scheme {
        None => 0,
        Some("http") => 1,
        Some("https") => 2,
        Some(_) => return None,
    };
    Some(method * 3 + scheme)
}

/// `http.*.active_requests`: +1 when a request starts, −1 when it ends, with the attributes known
/// at its start.
///
/// With the OpenTelemetry SDK in the build (feature `sdk`, `prometheus` or `otlp`), each of the
/// 30 possible attribute sets is bound to its series the first time a request uses it and kept
/// for the life of the layer: a request then adds to its series directly, where an unbound
/// recording has the SDK hash the attribute set and look it up in its table, twice per request.
/// The series, its attributes and its values are those of the unbound recording. Without the
/// SDK every change goes through [`UpDownCounter::add`].
///
/// Binding is OpenTelemetry's experimental `bind`, which the SDK implements (this crate turns the
/// SDK's `experimental_metrics_bound_instruments` feature on with its SDK features); a meter of
/// some other provider that does not implement it would drop the bound recordings.
pub(crate) struct ActiveRequests {
    counter: UpDownCounter<i64>,
    #[cfg(feature = "sdk")]
    bound: [OnceLock<BoundUpDownCounter<i64>>; ACTIVE_SLOTS],
}

impl std::fmt::Debug for ActiveRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveRequests").finish_non_exhaustive()
    }
}

impl ActiveRequests {
    fn new(counter: UpDownCounter<i64>) -> Self {
        Self {
            counter,
            #[cfg(feature = "sdk")]
            bound: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Adds `n` to the series of `method` (a [`method_name`](crate::recorder::method_name) value)
    /// and `scheme`.
    pub(crate) fn add(&self, n: i64, method: &'static str, scheme: Option<&'static str>) {
        #[cfg(feature = "sdk")]
        if let Some(slot) = active_slot(method, scheme) {
            self.bound[slot]
                .get_or_init(|| {
                    let (attributes, len) = active_attributes(method, scheme);
                    self.counter.bind(&attributes[..len])
                })
                .add(n);
            return;
        }
        let (attributes, len) = active_attributes(method, scheme);
        self.counter.add(n, &attributes[..len]);
    }
}

/// How many duration series a layer keeps bound: 32. A client layer sending to one service
/// records a handful (a method or two, a status code or two). Once 32 are bound, a request of
/// another series is recorded unbound, as without binding, and one such request in 32 replaces
/// the oldest binding with its own series: a layer recording more series than that (a server
/// with many routes) pays a bind, which costs more than an unbound recording, on a few of its
/// requests only, and the bound set follows the series in use.
#[cfg(feature = "sdk")]
const DURATION_SERIES: usize = 32;

/// `http.*.request.duration`. With the SDK in the build, the series recorded lately are bound
/// (see [`ActiveRequests`] for what that means and needs): a request whose attribute values
/// equal a bound series' records into it after comparing them, without building the attribute
/// list or the SDK hashing it. Same series, same values as unbound.
pub(crate) struct RequestDuration {
    histogram: Histogram<f64>,
    #[cfg(feature = "sdk")]
    bound: RwLock<BoundDurations>,
    /// Requests of an unbound series seen while every binding was taken.
    #[cfg(feature = "sdk")]
    misses: AtomicUsize,
}

#[cfg(feature = "sdk")]
#[derive(Default)]
struct BoundDurations {
    list: Vec<BoundDuration>,
    /// The entry replaced next once the list is full.
    next: usize,
}

#[cfg(feature = "sdk")]
struct BoundDuration {
    attributes: MetricAttributes,
    status: Option<StatusCode>,
    error_type: Option<&'static str>,
    histogram: BoundHistogram<f64>,
}

#[cfg(feature = "sdk")]
impl BoundDuration {
    fn is(
        &self,
        attrs: &MetricAttributes,
        status: Option<StatusCode>,
        error_type: Option<&'static str>,
    ) -> bool {
        self.status == status && self.error_type == error_type && self.attributes == *attrs
    }
}

impl std::fmt::Debug for RequestDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestDuration").finish_non_exhaustive()
    }
}

impl RequestDuration {
    fn new(histogram: Histogram<f64>) -> Self {
        Self {
            histogram,
            #[cfg(feature = "sdk")]
            bound: RwLock::default(),
            #[cfg(feature = "sdk")]
            misses: AtomicUsize::new(0),
        }
    }

    /// Records `seconds` in the series of these attributes.
    pub(crate) fn record(
        &self,
        seconds: f64,
        attrs: &MetricAttributes,
        status: Option<StatusCode>,
        error_type: Option<&'static str>,
    ) {
        #[cfg(feature = "sdk")]
        {
            let full;
            {
                let bound = self.bound.read().unwrap_or_else(PoisonError::into_inner);
                if let Some(entry) = bound.list.iter().find(|e| e.is(attrs, status, error_type)) {
                    entry.histogram.record(seconds);
                    return;
                }
                full = bound.list.len() >= DURATION_SERIES;
            }
            let (points, n) = duration_attributes(attrs, status, error_type);
            if full
                && !self
                    .misses
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(DURATION_SERIES)
            {
                self.histogram.record(seconds, &points[..n]);
                return;
            }
            let entry = BoundDuration {
                attributes: attrs.clone(),
                status,
                error_type,
                histogram: self.histogram.bind(&points[..n]),
            };
            entry.histogram.record(seconds);
            let mut bound = self.bound.write().unwrap_or_else(PoisonError::into_inner);
            if bound.list.iter().any(|e| e.is(attrs, status, error_type)) {
                // Another clone bound it meanwhile.
            } else if bound.list.len() < DURATION_SERIES {
                bound.list.push(entry);
            } else {
                let next = bound.next;
                bound.list[next] = entry;
                bound.next = (next + 1) % DURATION_SERIES;
            }
        }
        #[cfg(not(feature = "sdk"))]
        {
            let (points, n) = duration_attributes(attrs, status, error_type);
            self.histogram.record(seconds, &points[..n]);
        }
    }
}
