//! Exponential backoff with full jitter.

use std::time::Duration;

use mesh_core::ConfigError;

/// Exponential backoff with full jitter: before retry *n* (1 for the first retry) wait a uniformly
/// random time in `[0, min(max, base × 2ⁿ⁻¹)]`.
///
/// Full jitter spreads the retries of many clients that failed together, which a fixed or
/// lightly-jittered delay does not (the "thundering herd" after a blip). The defaults are Envoy's:
/// base 25 ms, max 250 ms (10 × base).
///
/// ```
/// use std::time::Duration;
/// use mesh_retry::retry::ExponentialBackoff;
///
/// let backoff = ExponentialBackoff::default();
/// assert_eq!(backoff.ceiling(1), Duration::from_millis(25));
/// assert_eq!(backoff.ceiling(3), Duration::from_millis(100));
/// assert_eq!(backoff.ceiling(10), Duration::from_millis(250));
/// let mut rng = fastrand::Rng::with_seed(7);
/// assert!(backoff.delay(2, &mut rng) <= Duration::from_millis(50));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExponentialBackoff {
    base: Duration,
    max: Duration,
}

impl Default for ExponentialBackoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(25),
            max: Duration::from_millis(250),
        }
    }
}

impl ExponentialBackoff {
    /// Backoff from `base`, never above `max`; `base` must not exceed `max`.
    pub fn new(base: Duration, max: Duration) -> Result<Self, ConfigError> {
        if base > max {
            return Err(ConfigError::new(
                "backoff",
                "the base delay must not exceed the maximum",
            ));
        }
        Ok(Self { base, max })
    }

    /// No delay at all (for tests, or when the inner layer already spaces attempts out).
    pub fn none() -> Self {
        Self {
            base: Duration::ZERO,
            max: Duration::ZERO,
        }
    }

    /// The upper bound of the delay before retry `retry` (1-based): `min(max, base × 2ʳᵉᵗʳʸ⁻¹)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// The delay before retry `retry` (1-based), drawn from `rng`.
    pub fn delay(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = u64::try_from(self.ceiling(retry).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.u64(0..=ceiling))
    }
}
