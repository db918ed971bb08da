//! [`BalanceConfig`] and its validation.

use std::time::Duration;

use mesh_core::ConfigError;
use opentelemetry::metrics::Meter;

use crate::eject::OutlierConfig;
use crate::hash::HashConfig;
use crate::load::LoadStrategy;
use crate::locality::LocalityConfig;
use crate::slow_start::SlowStart;

/// Everything a [`Balance`](super::Balance) can be tuned with; every field has a documented default.
///
/// `Clone`, but not `PartialEq`: an OpenTelemetry [`Meter`] cannot be compared.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BalanceConfig {
    /// How two sampled endpoints are compared. Default: PeakEWMA (30 ms, 10 s).
    pub(crate) load: LoadStrategy,
    /// How long no endpoint may be ready before requests fail with
    /// [`NoEndpoints`](mesh_core::error::NoEndpoints) instead of waiting. Default 3 s: longer
    /// than a connect attempt plus a retry, far shorter than the request timeouts callers usually
    /// set, so a dead service is reported as such rather than as a timeout.
    pub(crate) fail_fast_after: Duration,
    /// The most callers that may wait for an endpoint at once; past it, `poll_ready` fails at once
    /// with `NoEndpoints`. Default 1024 (Envoy's pending-request limit).
    pub(crate) max_waiters: usize,
    /// The most requests in flight over all endpoints at once (Envoy's `max_requests` circuit
    /// breaker); past it, `poll_ready` fails at once with
    /// [`Overloaded`](mesh_core::error::Overloaded) (a 503 at a proxy edge). The check is made
    /// before the pick without a lock, so concurrent callers may overshoot it by a few. Default
    /// `None`: no bound of the balancer's own.
    pub(crate) max_in_flight: Option<usize>,
    /// Seed of the balancer's random choices (sampling, tier draw, ejection jitter); `None` draws
    /// one from the OS. Default `None`; set it in tests.
    pub(crate) seed: Option<u64>,
    /// Outlier ejection. Default: on, see [`OutlierConfig`].
    pub(crate) outliers: OutlierConfig,
    /// Locality tiers. Default: unknown local locality, so one tier.
    pub(crate) locality: LocalityConfig,
    /// How a newly discovered endpoint's weight ramps up (see [`slow_start`](crate::slow_start)).
    /// The ramp starts when discovery first inserts the endpoint; a later update of the same
    /// endpoint (a new weight) does not restart it, but coming back cold does: after an outlier
    /// ejection or a spell of not being ready (failing health checks) of at least
    /// [`cold_after`](SlowStart::cold_after). It scales the weight the load is divided by,
    /// so it has no effect with [`LoadStrategy::RoundRobin`](crate::LoadStrategy::RoundRobin).
    /// Default: disabled (a zero window), as in Envoy: only the operator knows how long their
    /// endpoints take to warm up.
    pub(crate) slow_start: SlowStart,
    /// Where the balancer's metrics go (names in the [crate docs](crate#metrics)). Default `None`:
    /// `opentelemetry::global::meter("mesh-balance")`, a no-op until the application installs a
    /// global provider. The instruments are created once, when the balancer is built.
    pub(crate) meter: Option<Meter>,
    /// Consistent hashing: requests carrying the configured key stick to one endpoint (see
    /// [Consistent hashing](super#consistent-hashing)). Default `None`: every request is balanced
    /// by [`load`](Self::load); stickiness trades balance for locality of state, which only the
    /// application can decide to want.
    pub(crate) hash: Option<HashConfig>,
    /// The balancer's name (the upstream service it balances, say `orders`): recorded as the
    /// `mesh.balance.name` attribute on every series of its metrics, so balancers sharing a meter
    /// can be told apart, and reported by [`BalanceHandle::name`](super::BalanceHandle::name).
    /// Default `None`: no such attribute (the series of balancers sharing a meter add up). Keep
    /// it to a bounded set of names: each one multiplies the balancer's series.
    pub(crate) name: Option<String>,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        Self {
            load: LoadStrategy::default(),
            fail_fast_after: Duration::from_secs(3),
            max_waiters: 1024,
            max_in_flight: None,
            seed: None,
            outliers: OutlierConfig::default(),
            locality: LocalityConfig::default(),
            slow_start: SlowStart::default(),
            meter: None,
            hash: None,
            name: None,
        }
    }
}

impl BalanceConfig {
    /// How two sampled endpoints are compared. Default: PeakEWMA (30 ms, 10 s).
    #[must_use]
    pub fn load(mut self, load: LoadStrategy) -> Self {
        self.load = load;
        self
    }

    /// How long no endpoint may be ready before requests fail with
    /// [`NoEndpoints`](mesh_core::error::NoEndpoints) instead of waiting. Default 3 s: longer
    /// than a connect attempt plus a retry, far shorter than the request timeouts callers usually
    /// set, so a dead service is reported as such rather than as a timeout.
    #[must_use]
    pub fn fail_fast_after(mut self, after: Duration) -> Self {
        self.fail_fast_after = after;
        self
    }

    /// The most callers that may wait for an endpoint at once; past it, `poll_ready` fails at once
    /// with `NoEndpoints`. Default 1024 (Envoy's pending-request limit).
    #[must_use]
    pub fn max_waiters(mut self, max: usize) -> Self {
        self.max_waiters = max;
        self
    }

    /// The most requests in flight over all endpoints at once (Envoy's `max_requests`); past
    /// it, `poll_ready` fails at once with [`Overloaded`](mesh_core::error::Overloaded).
    /// Concurrent callers may overshoot it by a few (the check takes no lock). Default `None`.
    #[must_use]
    pub fn max_in_flight(mut self, max: impl Into<Option<usize>>) -> Self {
        self.max_in_flight = max.into();
        self
    }

    /// Seed of the balancer's random choices (sampling, tier draw, ejection jitter); `None` draws
    /// one from the OS. Default `None`; set it in tests.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Outlier ejection. Default: on, see [`OutlierConfig`].
    #[must_use]
    pub fn outliers(mut self, outliers: OutlierConfig) -> Self {
        self.outliers = outliers;
        self
    }

    /// Locality tiers. Default: unknown local locality, so one tier.
    #[must_use]
    pub fn locality(mut self, locality: LocalityConfig) -> Self {
        self.locality = locality;
        self
    }

    /// How a newly discovered endpoint's weight ramps up (see [`slow_start`](crate::slow_start)).
    /// The ramp starts when discovery first inserts the endpoint; a later update of the same
    /// endpoint (a new weight) does not restart it, but coming back cold does: after an outlier
    /// ejection or a spell of not being ready (failing health checks) of at least
    /// [`cold_after`](SlowStart::cold_after). It scales the weight the load is divided by,
    /// so it has no effect with [`LoadStrategy::RoundRobin`](crate::LoadStrategy::RoundRobin).
    /// Default: disabled (a zero window), as in Envoy: only the operator knows how long their
    /// endpoints take to warm up.
    #[must_use]
    pub fn slow_start(mut self, slow_start: SlowStart) -> Self {
        self.slow_start = slow_start;
        self
    }

    /// The balancer's name (the upstream service it balances, say `orders`): recorded as the
    /// `mesh.balance.name` attribute on every series of its metrics, so balancers sharing a meter
    /// can be told apart, and reported by [`BalanceHandle::name`](super::BalanceHandle::name).
    /// Default `None`: no such attribute (the series of balancers sharing a meter add up). Keep
    /// it to a bounded set of names: each one multiplies the balancer's series.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Where the balancer's metrics go (names in the [crate docs](crate#metrics)). Default `None`:
    /// `opentelemetry::global::meter("mesh-balance")`, a no-op until the application installs a
    /// global provider. The instruments are created once, when the balancer is built.
    ///
    /// The two series a request touches (its endpoint's `mesh.balance.endpoint.in_flight`, its
    /// tier's `mesh.balance.requests`) are bound once to their attribute sets (OpenTelemetry's
    /// experimental binding, which this crate turns on in the SDK): the same series and values,
    /// without the SDK looking the attribute set up per request. A meter provider other than the
    /// SDK's must implement binding, or those recordings are dropped.
    #[must_use]
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Consistent hashing: requests carrying the configured key stick to one endpoint (see
    /// [Consistent hashing](super#consistent-hashing)). Default `None`: every request is balanced
    /// by [`load`](Self::load); stickiness trades balance for locality of state, which only the
    /// application can decide to want.
    ///
    /// sticky requests by the key of `hash`.
    #[must_use]
    pub fn hash(mut self, hash: HashConfig) -> Self {
        self.hash = Some(hash);
        self
    }

    /// The load strategy.
    pub fn get_load(&self) -> &LoadStrategy {
        &self.load
    }

    /// How long callers wait for a ready endpoint before failing.
    pub fn get_fail_fast_after(&self) -> Duration {
        self.fail_fast_after
    }

    /// The most callers that may wait at once.
    pub fn get_max_waiters(&self) -> usize {
        self.max_waiters
    }

    /// The most requests in flight at once, if bounded.
    pub fn get_max_in_flight(&self) -> Option<usize> {
        self.max_in_flight
    }

    /// The outlier ejection settings.
    pub fn get_outliers(&self) -> &OutlierConfig {
        &self.outliers
    }

    /// The locality settings.
    pub fn get_locality(&self) -> &LocalityConfig {
        &self.locality
    }

    /// The slow-start settings.
    pub fn get_slow_start(&self) -> &SlowStart {
        &self.slow_start
    }

    /// The consistent-hashing settings, if any.
    pub fn get_hash(&self) -> Option<&HashConfig> {
        self.hash.as_ref()
    }

    /// The balancer's name, if any.
    pub fn get_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Checks every value; the error names the first bad key and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let share = |v: f64| (0.0..=1.0).contains(&v);
        let load_factor = self.hash.as_ref().map_or(2.0, |h| h.ring.load_factor);
        let checks: [(bool, &'static str, &'static str); 12] = [
            (
                !self.fail_fast_after.is_zero(),
                "fail_fast_after",
                "must be longer than zero",
            ),
            (self.max_waiters > 0, "max_waiters", "must be at least 1"),
            (
                self.max_in_flight != Some(0),
                "max_in_flight",
                "must be at least 1 (or none)",
            ),
            (
                !matches!(self.load, crate::LoadStrategy::PeakEwma(c) if c.decay.is_zero()),
                "load.decay",
                "must be longer than zero",
            ),
            (
                self.outliers.failure_rate > 0.0 && self.outliers.failure_rate <= 1.0,
                "outliers.failure_rate",
                "must be in (0, 1]",
            ),
            (
                (0.0..1.0).contains(&self.outliers.jitter),
                "outliers.jitter",
                "must be in [0, 1)",
            ),
            (
                share(self.outliers.max_ejected_share),
                "outliers.max_ejected_share",
                "must be in [0, 1]",
            ),
            (
                share(self.outliers.panic_threshold),
                "outliers.panic_threshold",
                "must be in [0, 1]",
            ),
            (
                self.outliers.base_ejection <= self.outliers.max_ejection,
                "outliers.base_ejection",
                "must not exceed outliers.max_ejection",
            ),
            (
                !self.outliers.multiplier_decay.is_zero(),
                "outliers.multiplier_decay",
                "must be longer than zero",
            ),
            (
                self.locality.threshold > 0.0 && self.locality.threshold <= 1.0,
                "locality.threshold",
                "must be in (0, 1]",
            ),
            (
                load_factor > 1.0 && load_factor.is_finite(),
                "hash.ring.load_factor",
                "must be finite and above 1",
            ),
        ];
        if let Some((_, key, reason)) = checks.into_iter().find(|(ok, _, _)| !ok) {
            return Err(ConfigError::new(key, reason));
        }
        self.slow_start
            .validate()
            .map_err(|error| error.within("slow_start"))
    }
}
