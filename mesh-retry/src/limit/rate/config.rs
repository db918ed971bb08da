//! [`RateLimitConfig`].

use std::borrow::Cow;

use opentelemetry::metrics::Meter;

use mesh_core::ConfigError;

/// Configuration of a [rate limit](super): a token bucket per key.
///
/// A bucket holds at most `burst` tokens and refills at `per_second` tokens a second; each request
/// takes one. So a key can send `burst` requests at once, then `per_second` a second.
///
/// | key | default | why |
/// |-----|---------|-----|
/// | `per_second` | required | no rate fits every service |
/// | `burst` | `max(1, per_second)` | one second's worth: absorbs the jitter of a client sending at the rate |
/// | `max_keys` | 10 000 | bounds memory (about 64 bytes plus the key per entry); see eviction on [`RateLimit`](super::RateLimit) |
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Tokens added per second (may be fractional: 0.5 is one request every two seconds).
    pub(crate) per_second: f64,
    /// Bucket capacity: the largest burst.
    pub(crate) burst: u32,
    /// Most keys tracked at once.
    pub(crate) max_keys: usize,
    /// A name put on metrics as `mesh.limit.name`.
    pub(crate) name: Option<Cow<'static, str>>,
    /// The meter metrics are recorded with; `None` uses `opentelemetry::global::meter("mesh-retry")`.
    pub(crate) meter: Option<Meter>,
}

impl RateLimitConfig {
    /// `per_second` requests a second, with a burst of one second's worth (at least 1).
    pub fn per_second(per_second: f64) -> Self {
        Self {
            per_second,
            burst: if per_second.is_finite() {
                per_second.clamp(1.0, f64::from(u32::MAX)).ceil() as u32
            } else {
                1
            },
            max_keys: 10_000,
            name: None,
            meter: None,
        }
    }

    /// The bucket capacity.
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// The most keys tracked at once.
    #[must_use]
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
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
        if !(self.per_second > 0.0 && self.per_second.is_finite()) {
            return Err(ConfigError::new(
                "per_second",
                "must be positive and finite",
            ));
        }
        if self.burst == 0 {
            return Err(ConfigError::new("burst", "must be at least 1"));
        }
        if self.max_keys == 0 {
            return Err(ConfigError::new("max_keys", "must be at least 1"));
        }
        Ok(())
    }
}
