//! [`HealthCheckConfig`]: what to probe, how often, and when to change the verdict.

use std::ops::RangeInclusive;
use std::time::Duration;

use http::uri::PathAndQuery;
use mesh_core::ConfigError;
use opentelemetry::metrics::Meter;

use super::HealthState;

/// Settings for active health checking; see the [module docs](crate::health) for the behaviour.
///
/// The defaults follow Kubernetes' probe defaults (period 10 s, timeout 1 s, failure threshold 3)
/// because that is the cadence most services are already tuned for. Envoy, the other reference
/// point, has no defaults at all: `interval`, `timeout`, `healthy_threshold` and
/// `unhealthy_threshold` are required fields of its `HealthCheck`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HealthCheckConfig {
    /// What a probe sends and what counts as a pass. Default: HTTP `GET /healthz`.
    pub(crate) check: HealthCheck,
    /// Time from the end of one probe to the start of the next, before jitter. Default 10 s: one
    /// cheap request per endpoint every 10 s is negligible load, and with the default thresholds
    /// a dead endpoint is taken out within about 30 s, well before passive signals would run out
    /// for a rarely used endpoint. Must be longer than zero.
    pub(crate) interval: Duration,
    /// Each wait is `interval × (1 ± jitter)`, uniformly drawn. Default 0.15 (±15 %): enough that
    /// checkers started together (a discovery update adding many endpoints, many proxies
    /// restarting at once) drift apart within a few rounds instead of probing in lockstep. Envoy's
    /// equivalent, `interval_jitter_percent`, defaults to 0. Must be in `[0, 1)`.
    pub(crate) jitter: f64,
    /// How long one probe may take — waiting for the probe service to be ready, the response
    /// head, and (for HTTP) reading the body — before it counts as a failure. Default 1 s: a
    /// health endpoint that cannot answer in a second will not serve real traffic well. Must be
    /// longer than zero.
    pub(crate) timeout: Duration,
    /// Consecutive passing probes that turn an unhealthy endpoint healthy. Default 2: one lucky
    /// probe should not put a flapping endpoint back. (An endpoint that *starts* unhealthy needs
    /// just one, as in Envoy.) Must be at least 1.
    pub(crate) healthy_threshold: u32,
    /// Consecutive failing probes that turn a healthy endpoint unhealthy. Default 3 (Kubernetes'
    /// `failureThreshold`): one lost packet or slow GC pause must not take an endpoint out. Must
    /// be at least 1.
    pub(crate) unhealthy_threshold: u32,
    /// The state before the first verdict. Default [`Healthy`](HealthState::Healthy): with
    /// discovery, a new endpoint is usually fine, and starting unhealthy would turn every
    /// cold start (the first discovery update, a proxy restart) into a short outage until the
    /// first probes pass. Choose `Unhealthy` (Envoy's behaviour) when discovery is known to
    /// announce endpoints before they can serve. Either way the first probe is sent at once.
    pub(crate) initial_state: HealthState,
    /// Seed for the jitter. Default `None`: seeded from fastrand's global generator. With a seed,
    /// each service built by one [`HealthCheckLayer`](super::HealthCheckLayer) gets its own stream
    /// derived from it and the order the services were built in, so runs repeat exactly.
    pub(crate) seed: Option<u64>,
    /// Where the health metrics are registered; default
    /// `opentelemetry::global::meter("mesh-balance")`.
    pub(crate) meter: Option<Meter>,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self::new(HealthCheck::default())
    }
}

impl HealthCheckConfig {
    /// The default settings, probing with `check`.
    pub fn new(check: HealthCheck) -> Self {
        Self {
            check,
            interval: Duration::from_secs(10),
            jitter: 0.15,
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            initial_state: HealthState::Healthy,
            seed: None,
            meter: None,
        }
    }

    /// What a probe sends and what counts as a pass. Default: HTTP `GET /healthz`.
    pub fn check(mut self, check: HealthCheck) -> Self {
        self.check = check;
        self
    }

    /// Time from the end of one probe to the start of the next, before jitter. Default 10 s: one
    /// cheap request per endpoint every 10 s is negligible load, and with the default thresholds
    /// a dead endpoint is taken out within about 30 s, well before passive signals would run out
    /// for a rarely used endpoint. Must be longer than zero.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Each wait is `interval × (1 ± jitter)`, uniformly drawn. Default 0.15 (±15 %): enough that
    /// checkers started together (a discovery update adding many endpoints, many proxies
    /// restarting at once) drift apart within a few rounds instead of probing in lockstep. Envoy's
    /// equivalent, `interval_jitter_percent`, defaults to 0. Must be in `[0, 1)`.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// How long one probe may take — waiting for the probe service to be ready, the response
    /// head, and (for HTTP) reading the body — before it counts as a failure. Default 1 s: a
    /// health endpoint that cannot answer in a second will not serve real traffic well. Must be
    /// longer than zero.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Consecutive passing probes that turn an unhealthy endpoint healthy. Default 2: one lucky
    /// probe should not put a flapping endpoint back. (An endpoint that *starts* unhealthy needs
    /// just one, as in Envoy.) Must be at least 1.
    pub fn healthy_threshold(mut self, n: u32) -> Self {
        self.healthy_threshold = n;
        self
    }

    /// Consecutive failing probes that turn a healthy endpoint unhealthy. Default 3 (Kubernetes'
    /// `failureThreshold`): one lost packet or slow GC pause must not take an endpoint out. Must
    /// be at least 1.
    pub fn unhealthy_threshold(mut self, n: u32) -> Self {
        self.unhealthy_threshold = n;
        self
    }

    /// The state before the first verdict. Default [`Healthy`](HealthState::Healthy): with
    /// discovery, a new endpoint is usually fine, and starting unhealthy would turn every
    /// cold start (the first discovery update, a proxy restart) into a short outage until the
    /// first probes pass. Choose `Unhealthy` (Envoy's behaviour) when discovery is known to
    /// announce endpoints before they can serve. Either way the first probe is sent at once.
    pub fn initial_state(mut self, state: HealthState) -> Self {
        self.initial_state = state;
        self
    }

    /// Seed for the jitter. Default `None`: seeded from fastrand's global generator. With a seed,
    /// each service built by one [`HealthCheckLayer`](super::HealthCheckLayer) gets its own stream
    /// derived from it and the order the services were built in, so runs repeat exactly.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Where the health metrics are registered; default
    /// `opentelemetry::global::meter("mesh-balance")`.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Checks every value; the error names the first bad key and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let error = |key, reason| Err(ConfigError::new(key, reason));
        if self.interval.is_zero() {
            return error("interval", "must be longer than zero");
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return error("jitter", "must be in [0, 1)");
        }
        if self.timeout.is_zero() {
            return error("timeout", "must be longer than zero");
        }
        if self.healthy_threshold == 0 {
            return error("healthy_threshold", "must be at least 1");
        }
        if self.unhealthy_threshold == 0 {
            return error("unhealthy_threshold", "must be at least 1");
        }
        match &self.check {
            HealthCheck::Http(http) => {
                let (start, end) = (*http.healthy_statuses.start(), *http.healthy_statuses.end());
                if !(100..=599).contains(&start) || !(100..=599).contains(&end) || start > end {
                    return error(
                        "check.healthy_statuses",
                        "must be a non-empty range of status codes within 100..=599",
                    );
                }
            }
            HealthCheck::Grpc(grpc) => {
                if grpc.service.len() > MAX_GRPC_SERVICE_LEN {
                    return error("check.service", "must be at most 1024 bytes");
                }
            }
        }
        Ok(())
    }
}

/// Service names are fully qualified protobuf names; anything longer is a configuration mistake.
const MAX_GRPC_SERVICE_LEN: usize = 1024;

/// What a probe sends, and what counts as a pass.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum HealthCheck {
    /// An HTTP `GET`.
    Http(HttpCheck),
    /// A gRPC `grpc.health.v1.Health/Check` call.
    Grpc(GrpcCheck),
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self::Http(HttpCheck::default())
    }
}

impl HealthCheck {
    /// An HTTP `GET path` passing on 200–399.
    pub fn http(path: PathAndQuery) -> Self {
        Self::Http(HttpCheck::new(path))
    }

    /// A gRPC health check of `service` (`""` asks about the server as a whole).
    pub fn grpc(service: impl Into<String>) -> Self {
        Self::Grpc(GrpcCheck::new(service))
    }
}

/// An HTTP health check: `GET path`, passing when the status is in
/// [`healthy_statuses`](Self::healthy_statuses).
///
/// The request has an empty body, no headers of its own, and an origin-form URI; the probe
/// service supplies `Host` / `:authority` (mesh-core's `HttpClient` uses the endpoint address).
/// The response body is read and discarded (up to 64 KiB, within the timeout) so an HTTP/1.1
/// connection can go back to its pool; a body that fails mid-way fails the probe.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpCheck {
    /// The path (and query) to request. Default `/healthz`, the Kubernetes convention.
    pub path: PathAndQuery,
    /// The statuses that pass. Default `200..=399`: any success, and a redirect (a `/healthz`
    /// answered with `301` to `/healthz/`) still shows the process is up and routing. Envoy
    /// passes only `200` unless told otherwise; set `200..=200` for that.
    pub healthy_statuses: RangeInclusive<u16>,
}

impl Default for HttpCheck {
    fn default() -> Self {
        Self::new(PathAndQuery::from_static("/healthz"))
    }
}

impl HttpCheck {
    /// `GET path`, passing on 200–399.
    pub fn new(path: PathAndQuery) -> Self {
        Self {
            path,
            healthy_statuses: 200..=399,
        }
    }

    /// Sets [`healthy_statuses`](Self::healthy_statuses).
    pub fn healthy_statuses(mut self, statuses: RangeInclusive<u16>) -> Self {
        self.healthy_statuses = statuses;
        self
    }
}

/// A gRPC health check: a unary `grpc.health.v1.Health/Check` call.
///
/// It passes when the HTTP status is 200, the `grpc-status` (from the headers of a trailers-only
/// response, or from the trailers) is `OK`, and the body is one uncompressed
/// `HealthCheckResponse` saying `SERVING`. Anything else fails: `NOT_SERVING`,
/// `SERVICE_UNKNOWN`, `grpc-status: UNIMPLEMENTED` (a server without the health service), a
/// missing status, or a malformed frame. The probe service must speak HTTP/2 (for mesh-core's
/// client, `Protocol::Http2`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct GrpcCheck {
    /// The service to ask about. Default `""`: the server as a whole.
    pub service: String,
}

impl GrpcCheck {
    /// A check of `service` (`""` for the whole server).
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
        }
    }
}
