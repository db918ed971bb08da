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
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenBucketConfig {
    max_tokens: u32,
    ratio_milli: u64,
}

impl Default for TokenBucketConfig {
    fn default() -> Self {
        Self {
            max_tokens: 10,
            ratio_milli: 100,
        }
    }
}

impl TokenBucketConfig {
    /// The bucket size, 1 to 1000 (gRPC's range).
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Result<Self, ConfigError> {
        if !(1..=1000).contains(&max_tokens) {
            return Err(ConfigError::new("max_tokens", "must be between 1 and 1000"));
        }
        self.max_tokens = max_tokens;
        Ok(self)
    }

    /// Tokens returned by each success, above 0 and at most 1, rounded to three decimal places
    /// as gRPC does.
    pub fn with_token_ratio(mut self, ratio: f64) -> Result<Self, ConfigError> {
        let milli = (ratio * MILLI as f64).round();
        if !ratio.is_finite() || !(1.0..=1000.0).contains(&milli) {
            return Err(ConfigError::new(
                "token_ratio",
                "must be above 0 (at least 0.001) and at most 1",
            ));
        }
        self.ratio_milli = milli as u64;
        Ok(self)
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
        Self::new(TokenBucketConfig::default())
    }
}

impl TokenBucketBudget {
    /// A full bucket with these settings (validated by the config's builders).
    pub fn new(config: TokenBucketConfig) -> Self {
        let max_milli = u64::from(config.max_tokens) * MILLI;
        Self {
            tokens_milli: Arc::new(AtomicU64::new(max_milli)),
            max_milli,
            ratio_milli: config.ratio_milli,
        }
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
