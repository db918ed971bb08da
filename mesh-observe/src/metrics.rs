//! The metric names this crate records, their bucket boundaries, and the table of every metric the
//! mesh-* workspace records.
//!
//! All instruments are created once per layer (or propagator) from the [`Meter`] in its
//! configuration and shared by its clones. Counters whose attributes form a closed set record 0 for
//! each of their series when they are created (here `mesh.trace_context.rejected`; in mesh-tls
//! `mesh.tls.authz.decisions` and `mesh.tls.identity.updates`), so that every series exists before
//! its first event: Prometheus' `increase()` cannot see the step to a series' first sample; recording a request allocates nothing in this module
//! (attributes are static strings, integers, or reference-counted strings carried by the request,
//! on a fixed-size stack array).
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

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, UpDownCounter};

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
#[derive(Clone, Debug)]
pub(crate) struct RequestInstruments {
    pub(crate) duration: Histogram<f64>,
    pub(crate) active: UpDownCounter<i64>,
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
            duration: meter
                .f64_histogram(duration)
                .with_description(format!("Duration of HTTP {what} requests"))
                .with_unit("s")
                .with_boundaries(DURATION_BOUNDARIES.to_vec())
                .build(),
            active: meter
                .i64_up_down_counter(active)
                .with_description(format!("Number of active HTTP {what} requests"))
                .with_unit("{request}")
                .build(),
            rejected: RejectionCounter::new(meter),
        }
    }
}
