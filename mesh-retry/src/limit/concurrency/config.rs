//! [`ConcurrencyConfig`].

use std::borrow::Cow;

use mesh_core::ConfigError;
use opentelemetry::metrics::Meter;

use super::vegas::VegasConfig;

/// How the limit is set.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum LimitAlgorithm {
    /// A fixed number of requests in flight.
    Fixed(u32),
    /// A limit that follows the service's latency ([`Vegas`](super::Vegas)).
    Vegas(VegasConfig),
}

/// What happens to a request over the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverLimit {
    /// `poll_ready` stays ready and the response future fails at once with
    /// [`Overloaded`](mesh_core::error::Overloaded): load shedding, for the inbound side of a
    /// service, and for callers that never wait on readiness (axum).
    #[default]
    FailFast,
    /// `poll_ready` is `Pending` until a request finishes (tower's `ConcurrencyLimit` behaviour);
    /// put a timeout or a bounded buffer in front.
    Wait,
}

/// Configuration of a [concurrency limit](super).
///
/// | key | default | why |
/// |-----|---------|-----|
/// | `algorithm` | `Fixed(1024)` | Envoy's default for its request "circuit breaker" (a resource limit) |
/// | `over_limit` | [`OverLimit::FailFast`] | shedding with 503 beats an unbounded queue; Envoy fails fast too |
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConcurrencyConfig {
    /// Fixed or adaptive limit.
    pub(crate) algorithm: LimitAlgorithm,
    /// Fail fast or wait.
    pub(crate) over_limit: OverLimit,
    /// A name put on metrics as `mesh.limit.name`.
    pub(crate) name: Option<Cow<'static, str>>,
    /// The meter metrics are recorded with; `None` uses `opentelemetry::global::meter("mesh-retry")`.
    pub(crate) meter: Option<Meter>,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        Self::fixed(1024)
    }
}

impl ConcurrencyConfig {
    /// At most `max` requests in flight.
    pub fn fixed(max: u32) -> Self {
        Self {
            algorithm: LimitAlgorithm::Fixed(max),
            over_limit: OverLimit::FailFast,
            name: None,
            meter: None,
        }
    }

    /// A limit adapted to latency by [`Vegas`](super::Vegas).
    pub fn adaptive(vegas: VegasConfig) -> Self {
        Self {
            algorithm: LimitAlgorithm::Vegas(vegas),
            ..Self::fixed(1)
        }
    }

    /// Replaces the limit algorithm.
    #[must_use]
    pub fn algorithm(mut self, algorithm: LimitAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The limit algorithm.
    pub fn get_algorithm(&self) -> &LimitAlgorithm {
        &self.algorithm
    }

    /// What happens to a request over the limit.
    pub fn get_over_limit(&self) -> OverLimit {
        self.over_limit
    }

    /// Fail fast or wait when over the limit.
    #[must_use]
    pub fn over_limit(mut self, over_limit: OverLimit) -> Self {
        self.over_limit = over_limit;
        self
    }

    /// Names the limit on metrics.
    #[must_use]
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Records metrics with `meter`.
    #[must_use]
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Checks every key; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.algorithm {
            LimitAlgorithm::Fixed(0) => Err(ConfigError::new(
                "algorithm.fixed",
                "must allow at least one request",
            )),
            LimitAlgorithm::Fixed(_) => Ok(()),
            LimitAlgorithm::Vegas(vegas) => vegas
                .validate()
                .map_err(|(key, reason)| ConfigError::new(key, reason)),
        }
    }
}
