//! [`SlowStart`]: the ramp's settings and the weight factor they give.

use std::time::Duration;

use mesh_core::ConfigError;
use mesh_core::Weight;
use tokio::time::Instant;

/// How a new endpoint's weight ramps up; see the [module docs](crate::slow_start) for the formula
/// and how a balancer applies it.
///
/// `Copy`, allocation-free and clock-free: every method is pure arithmetic on its arguments.
/// Values that [`validate`](Self::validate) would reject are never turned into a panic or a NaN
/// by [`factor`](Self::factor): an unusable `aggression` counts as 1 and the floor is clamped to
/// 0–100 %.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct SlowStart {
    /// How long the ramp lasts. Default zero, which disables slow start (the factor is always 1):
    /// like Envoy's `slow_start_window`, slow start is opt-in, because any value throttles every
    /// new endpoint and only the operator knows how long theirs take to warm up.
    pub(crate) window: Duration,
    /// The ramp's shape: the exponent is `1 / aggression`. Default 1.0 (linear), Envoy's default.
    /// Must be finite and above zero.
    pub(crate) aggression: f64,
    /// The lowest factor, in percent of the weight. Default 10 %, Envoy's `min_weight_percent`
    /// default: enough traffic for a newcomer to be measured, too little to hurt if it is slow.
    /// Must be in 0–100.
    pub(crate) min_weight_percent: f64,
    /// How long an endpoint must have been out of rotation to count as cold when it comes back:
    /// the ramp then starts again from the floor (see [`is_cold_after`](Self::is_cold_after)).
    /// Default 10 s: shorter than the briefest spell active health checks can cause with their
    /// defaults (two passing checks 10 s ± 15 % apart, so ≥ 17 s unhealthy) and than any
    /// ejection (30 s at least, by default), yet far longer than an endpoint stays not ready
    /// while it merely waits for a pooled connection to free up, which must not throttle a warm
    /// endpoint.
    pub(crate) cold_after: Duration,
}

impl Default for SlowStart {
    fn default() -> Self {
        Self {
            window: Duration::ZERO,
            aggression: 1.0,
            min_weight_percent: 10.0,
            cold_after: Duration::from_secs(10),
        }
    }
}

impl SlowStart {
    /// Slow start over `window`, with the default aggression (1.0) and floor (10 %).
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            ..Self::default()
        }
    }

    /// How long the ramp lasts. Default zero, which disables slow start (the factor is always 1):
    /// like Envoy's `slow_start_window`, slow start is opt-in, because any value throttles every
    /// new endpoint and only the operator knows how long theirs take to warm up.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The ramp's shape: the exponent is `1 / aggression`. Default 1.0 (linear), Envoy's default.
    /// Must be finite and above zero.
    pub fn aggression(mut self, aggression: f64) -> Self {
        self.aggression = aggression;
        self
    }

    /// The lowest factor, in percent of the weight. Default 10 %, Envoy's `min_weight_percent`
    /// default: enough traffic for a newcomer to be measured, too little to hurt if it is slow.
    /// Must be in 0–100.
    pub fn min_weight_percent(mut self, percent: f64) -> Self {
        self.min_weight_percent = percent;
        self
    }

    /// How long an endpoint must have been out of rotation to count as cold when it comes back:
    /// the ramp then starts again from the floor (see [`is_cold_after`](Self::is_cold_after)).
    /// Default 10 s: shorter than the briefest spell active health checks can cause with their
    /// defaults (two passing checks 10 s ± 15 % apart, so ≥ 17 s unhealthy) and than any
    /// ejection (30 s at least, by default), yet far longer than an endpoint stays not ready
    /// while it merely waits for a pooled connection to free up, which must not throttle a warm
    /// endpoint.
    pub fn cold_after(mut self, cold_after: Duration) -> Self {
        self.cold_after = cold_after;
        self
    }

    /// The ramp's length; zero when slow start is off.
    pub fn get_window(&self) -> Duration {
        self.window
    }

    /// The ramp's curvature.
    pub fn get_aggression(&self) -> f64 {
        self.aggression
    }

    /// The weight floor during the ramp, in percent.
    pub fn get_min_weight_percent(&self) -> f64 {
        self.min_weight_percent
    }

    /// How long out of rotation makes an endpoint cold again.
    pub fn get_cold_after(&self) -> Duration {
        self.cold_after
    }

    /// Whether an endpoint that was out of rotation for `out` (ejected, or not ready) restarts
    /// its ramp when it comes back: slow start is enabled and `out ≥ cold_after`.
    pub fn is_cold_after(&self, out: Duration) -> bool {
        self.is_enabled() && out >= self.cold_after
    }

    /// Whether slow start does anything (a window longer than zero).
    pub fn is_enabled(&self) -> bool {
        !self.window.is_zero()
    }

    /// Checks every value; the error names the first bad key and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.aggression.is_finite() && self.aggression > 0.0) {
            return Err(ConfigError::new(
                "aggression",
                "must be a finite number above zero",
            ));
        }
        if !(0.0..=100.0).contains(&self.min_weight_percent) {
            return Err(ConfigError::new(
                "min_weight_percent",
                "must be in [0, 100]",
            ));
        }
        Ok(())
    }

    /// The weight multiplier for an endpoint added `since_added` ago, in `[floor, 1]`.
    ///
    /// Exactly 1 once `since_added ≥ window`, and always 1 when slow start is disabled.
    pub fn factor(&self, since_added: Duration) -> f64 {
        if since_added >= self.window {
            return 1.0;
        }
        let floor = if self.min_weight_percent.is_nan() {
            0.0
        } else {
            self.min_weight_percent.clamp(0.0, 100.0) / 100.0
        };
        let progress = since_added.as_secs_f64() / self.window.as_secs_f64();
        let ramp =
            if self.aggression == 1.0 || !(self.aggression.is_finite() && self.aggression > 0.0) {
                progress
            } else {
                progress.powf(self.aggression.recip())
            };
        ramp.max(floor).min(1.0)
    }

    /// `weight` scaled by the [`factor`](Self::factor) for an endpoint added at `added_at`, seen
    /// at `now`. A `now` before `added_at` counts as just added.
    pub fn effective_weight(&self, weight: Weight, added_at: Instant, now: Instant) -> f64 {
        f64::from(weight.get()) * self.factor(now.saturating_duration_since(added_at))
    }
}
