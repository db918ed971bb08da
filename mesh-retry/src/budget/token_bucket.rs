//! gRPC retry throttling as a budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mesh_core::ConfigError;

use super::RetryBudget;

/// Tokens are counted in thousandths, the precision gRPC gives `tokenRatio`.
const MILLI: u64 = 1000;

/// Settings of a [`TokenBucketBudget`], named after gRPC's `retryThrottling` service config.
///
/// | Setting       | Default | Why                                                        |
/// |---------------|---------|------------------------------------------------------------|
/// | `max_tokens`  | 10      | the value in gRPC's documentation examples (range 1–1000)   |
/// | `token_ratio` | 0.1     | ditto: ten successes pay back one failure                   |
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TokenBucketConfig {
    max_tokens: u32,
    token_ratio: f64,
}

impl Default for TokenBucketConfig {
    fn default() -> Self {
        Self {
            max_tokens: 10,
            token_ratio: 0.1,
        }
    }
}

impl TokenBucketConfig {
    /// The bucket size, 1 to 1000 (gRPC's range), checked by [`validate`](Self::validate).
    #[must_use]
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// Tokens returned by each success, above 0 and at most 1, rounded to three decimal places
    /// as gRPC does; checked by [`validate`](Self::validate).
    #[must_use]
    pub fn token_ratio(mut self, ratio: f64) -> Self {
        self.token_ratio = ratio;
        self
    }

    /// Checks every value; the error names the first bad key and why.
    /// [`TokenBucketBudget::new`] calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=1000).contains(&self.max_tokens) {
            return Err(ConfigError::new("max_tokens", "must be between 1 and 1000"));
        }
        if !self.token_ratio.is_finite() || !(1.0..=1000.0).contains(&self.ratio_milli()) {
            return Err(ConfigError::new(
                "token_ratio",
                "must be above 0 (at least 0.001) and at most 1",
            ));
        }
        Ok(())
    }

    /// The ratio in thousandths of a token, rounded as gRPC does.
    fn ratio_milli(&self) -> f64 {
        (self.token_ratio * MILLI as f64).round()
    }
}

/// gRPC retry throttling (gRPC proposal A6) behind the [`RetryBudget`] trait.
///
/// The bucket starts full (`max_tokens`). Every failed attempt costs one token, every successful
/// one returns `token_ratio` (never above `max_tokens`); a retry is allowed only while the bucket
/// holds *more than* half of `max_tokens`. Requests themselves ([`deposit`](RetryBudget::deposit))
/// and granted retries cost nothing: the cost is the failure.
///
/// Lock-free (one atomic); `Clone` is cheap and clones share the bucket.
#[derive(Clone, Debug)]
pub struct TokenBucketBudget {
    tokens_milli: Arc<AtomicU64>,
    max_milli: u64,
    ratio_milli: u64,
}

impl Default for TokenBucketBudget {
    fn default() -> Self {
        Self::new(TokenBucketConfig::default()).expect("the default configuration is valid")
    }
}

impl TokenBucketBudget {
    /// A full bucket with these settings; fails when the config does not
    /// [validate](TokenBucketConfig::validate).
    pub fn new(config: TokenBucketConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let max_milli = u64::from(config.max_tokens) * MILLI;
        Ok(Self {
            tokens_milli: Arc::new(AtomicU64::new(max_milli)),
            max_milli,
            // Validated: a whole number in 1..=1000.
            ratio_milli: config.ratio_milli() as u64,
        })
    }

    /// Tokens left, in thousandths of a token.
    pub fn tokens_milli(&self) -> u64 {
        self.tokens_milli.load(Ordering::Relaxed)
    }
}

impl RetryBudget for TokenBucketBudget {
    fn deposit(&self) {}

    fn withdraw(&self) -> bool {
        // "Retries are throttled while tokens ≤ max_tokens / 2": compare doubled, no rounding.
        self.tokens_milli.load(Ordering::Relaxed) * 2 > self.max_milli
    }

    fn record(&self, success: bool) {
        let (max, ratio) = (self.max_milli, self.ratio_milli);
        // The closure always returns Some, so the update cannot fail.
        let _ = self
            .tokens_milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tokens| {
                Some(if success {
                    (tokens + ratio).min(max)
                } else {
                    tokens.saturating_sub(MILLI)
                })
            });
    }
}
