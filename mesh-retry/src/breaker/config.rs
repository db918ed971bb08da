//! [`BreakerConfig`]: when the breaker trips, how long it stays open, how it probes.

use std::borrow::Cow;
use std::time::Duration;

use mesh_core::ConfigError;
use opentelemetry::metrics::Meter;

/// The window of recent calls a rate-based breaker looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlidingWindow {
    /// The last `n` calls, however old (resilience4j's `COUNT_BASED`). Reacts at the same speed
    /// whatever the traffic, but a quiet service keeps old outcomes for a long time.
    Calls(u32),
    /// The calls of the last `n` seconds, in `n` buckets of one second (resilience4j's
    /// `TIME_BASED`, Polly's sampling duration). Old outcomes age out even without traffic.
    Seconds(u32),
}

/// What trips a closed breaker.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum TripRule {
    /// Trip when, over the [`SlidingWindow`] and once it holds at least `minimum_calls` calls, the
    /// share of failures reaches `failure_rate` or the share of slow calls reaches
    /// `slow_call_rate`.
    Rate {
        /// The calls looked at.
        window: SlidingWindow,
        /// No decision below this many calls in the window.
        minimum_calls: u32,
        /// Failure share in `(0, 1]` that trips the breaker.
        failure_rate: f64,
        /// Slow-call share in `(0, 1]` that trips the breaker (only used when
        /// [`BreakerConfig::slow_calls`] is set).
        slow_call_rate: f64,
    },
    /// Trip after this many failures in a row (Finagle / Envoy style); a success resets the count.
    ConsecutiveFailures(u32),
}

/// What the breaker does with a request while it refuses traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerMode {
    /// `poll_ready` is ready and the response future fails at once with
    /// [`CircuitOpen`](mesh_core::error::CircuitOpen): for a route-level breaker, and under callers
    /// that never wait on readiness (axum). `poll_ready` never fails, since a failing `poll_ready`
    /// means "this service is dead" to tower.
    #[default]
    FailFast,
    /// `poll_ready` is `Pending` while the breaker refuses, and wakes the task when it admits again
    /// (the open period ended, or a half-open probe slot was freed): for a per-endpoint gate under a
    /// balancer, which then routes around the endpoint.
    Gate,
}

/// Configuration of a [circuit breaker](super).
///
/// Defaults are chosen for a mesh, where retries (with a budget) already absorb isolated errors
/// and the breaker should only react to a service that is clearly broken:
///
/// | key | default | why |
/// |-----|---------|-----|
/// | `trip` | rate over 30 s, ≥ 20 calls, 50 % failures | 30 s is Polly's sampling window and Finagle's success-rate window; resilience4j's 100-call minimum is too slow for per-endpoint breakers with little traffic, Finagle's 5 too twitchy; 50 % is resilience4j's rate (Polly's 10 % opens on ordinary error bursts) |
/// | `slow_call_duration` | none (slow calls not counted) | what is "slow" depends on the service; resilience4j's 60 s default amounts to "off" |
/// | `slow_call_rate` | 100 % | resilience4j's default: only trip when every call is slow |
/// | `open_duration` | 5 s | Polly's break duration and Finagle's first backoff |
/// | `open_backoff` | × 2 per consecutive re-open | a probe failing again means the outage is not transient (Finagle, Envoy's ejection grow the same way) |
/// | `max_open_duration` | 60 s | Linkerd's failure-accrual maximum; Finagle goes to 300 s, too long for a route |
/// | `jitter` | 0.2 | open periods are shortened by up to 20 % at random so that clients do not probe in lock-step (Linkerd uses 0.5) |
/// | `half_open_probes` | 1 | Polly, Finagle and Linkerd admit one probe; resilience4j admits 10 |
/// | `count_overloaded` | false | a 429 or a 503 with `Retry-After` means "slow down", not "broken" |
/// | `mode` | [`BreakerMode::FailFast`] | safe under callers that never wait on readiness |
///
/// Validation happens when the layer or handle is built; an error names the key.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// What trips the breaker.
    pub(crate) trip: TripRule,
    /// Calls lasting at least this long (until the response body ends) are slow; `None` disables
    /// slow-call counting.
    pub(crate) slow_call_duration: Option<Duration>,
    /// How long the breaker stays open after tripping the first time.
    pub(crate) open_duration: Duration,
    /// Multiplier applied to the open duration for each consecutive re-open (a failed half-open
    /// attempt); `1.0` keeps it constant. Reset when the breaker closes.
    pub(crate) open_backoff: f64,
    /// Upper bound of the open duration after growth.
    pub(crate) max_open_duration: Duration,
    /// Fraction in `[0, 1]` by which each open period is randomly shortened.
    pub(crate) jitter: f64,
    /// How many probe calls a half-open breaker lets through at once.
    pub(crate) half_open_probes: u32,
    /// Whether "overloaded" responses (429, 503 with `Retry-After`) count as failures.
    pub(crate) count_overloaded: bool,
    /// Fail fast or gate readiness.
    pub(crate) mode: BreakerMode,
    /// Seed of the jitter RNG, for reproducible runs; `None` seeds from entropy.
    pub(crate) seed: Option<u64>,
    /// A name put on metrics as `mesh.breaker.name`.
    pub(crate) name: Option<Cow<'static, str>>,
    /// The meter metrics are recorded with; `None` uses `opentelemetry::global::meter("mesh-retry")`.
    pub(crate) meter: Option<Meter>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            trip: TripRule::Rate {
                window: SlidingWindow::Seconds(30),
                minimum_calls: 20,
                failure_rate: 0.5,
                slow_call_rate: 1.0,
            },
            slow_call_duration: None,
            open_duration: Duration::from_secs(5),
            open_backoff: 2.0,
            max_open_duration: Duration::from_secs(60),
            jitter: 0.2,
            half_open_probes: 1,
            count_overloaded: false,
            mode: BreakerMode::FailFast,
            seed: None,
            name: None,
            meter: None,
        }
    }
}

impl BreakerConfig {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// A rate-based breaker over `window`: trips at `failure_rate` once `minimum_calls` are in it.
    #[must_use]
    pub fn failure_rate(mut self, window: SlidingWindow, minimum_calls: u32, rate: f64) -> Self {
        let slow_call_rate = match self.trip {
            TripRule::Rate { slow_call_rate, .. } => slow_call_rate,
            TripRule::ConsecutiveFailures(_) => 1.0,
        };
        self.trip = TripRule::Rate {
            window,
            minimum_calls,
            failure_rate: rate,
            slow_call_rate,
        };
        self
    }

    /// Also trip when the share of calls lasting at least `duration` reaches `rate` (rate mode only).
    #[must_use]
    pub fn slow_calls(mut self, duration: Duration, rate: f64) -> Self {
        self.slow_call_duration = Some(duration);
        if let TripRule::Rate { slow_call_rate, .. } = &mut self.trip {
            *slow_call_rate = rate;
        }
        self
    }

    /// Trip after `n` consecutive failures instead of a rate.
    #[must_use]
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.trip = TripRule::ConsecutiveFailures(n);
        self
    }

    /// Open duration, growth per consecutive re-open, and its bound.
    #[must_use]
    pub fn open_duration(mut self, base: Duration, backoff: f64, max: Duration) -> Self {
        self.open_duration = base;
        self.open_backoff = backoff;
        self.max_open_duration = max;
        self
    }

    /// Random shortening of open periods, in `[0, 1]`.
    #[must_use]
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Probes admitted at once while half-open.
    #[must_use]
    pub fn half_open_probes(mut self, n: u32) -> Self {
        self.half_open_probes = n;
        self
    }

    /// Whether overloaded responses count as failures.
    #[must_use]
    pub fn count_overloaded(mut self, yes: bool) -> Self {
        self.count_overloaded = yes;
        self
    }

    /// Fail fast or gate readiness.
    #[must_use]
    pub fn mode(mut self, mode: BreakerMode) -> Self {
        self.mode = mode;
        self
    }

    /// Seeds the jitter RNG.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Names the breaker on metrics.
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
        let err = |key, reason| Err(ConfigError::new(key, reason));
        match self.trip {
            TripRule::Rate {
                window,
                minimum_calls,
                failure_rate,
                slow_call_rate,
            } => {
                match window {
                    SlidingWindow::Calls(0) | SlidingWindow::Seconds(0) => {
                        return err("trip.window", "must hold at least one call or second");
                    }
                    SlidingWindow::Calls(n) | SlidingWindow::Seconds(n) if n > 100_000 => {
                        return err("trip.window", "at most 100000 (memory is one slot each)");
                    }
                    _ => {}
                }
                if minimum_calls == 0 {
                    return err("trip.minimum_calls", "must be at least 1");
                }
                if !(failure_rate > 0.0 && failure_rate <= 1.0) {
                    return err("trip.failure_rate", "must be in (0, 1]");
                }
                if !(slow_call_rate > 0.0 && slow_call_rate <= 1.0) {
                    return err("trip.slow_call_rate", "must be in (0, 1]");
                }
            }
            TripRule::ConsecutiveFailures(0) => {
                return err("trip.consecutive_failures", "must be at least 1");
            }
            TripRule::ConsecutiveFailures(_) => {}
        }
        if self.slow_call_duration == Some(Duration::ZERO) {
            return err("slow_call_duration", "must be positive");
        }
        if self.open_duration.is_zero() {
            return err("open_duration", "must be positive");
        }
        if !(self.open_backoff >= 1.0 && self.open_backoff.is_finite()) {
            return err("open_backoff", "must be finite and at least 1.0");
        }
        if self.max_open_duration < self.open_duration {
            return err("max_open_duration", "must be at least open_duration");
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return err("jitter", "must be in [0, 1]");
        }
        if self.half_open_probes == 0 {
            return err("half_open_probes", "must be at least 1");
        }
        Ok(())
    }
}
