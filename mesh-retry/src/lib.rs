#![doc = include_str!("../README.md")]

pub mod body;
pub mod breaker;
pub mod budget;
pub mod hedge;
pub mod limit;
pub mod retry;
pub mod timeout;

pub use body::{ReplayBody, ReplayError};
pub use breaker::{
    BreakerConfig, BreakerHandle, BreakerMode, BreakerRegistry, BreakerState, CircuitBreaker,
    CircuitBreakerLayer,
};
pub use budget::{RetryBudget, TokenBucketBudget, WindowBudget};
pub use hedge::{Hedge, HedgeConfig, HedgeDelay, HedgeLayer};
pub use limit::{
    ConcurrencyConfig, ConcurrencyLimit, ConcurrencyLimitLayer, LimitAlgorithm, RateLimit,
    RateLimitConfig, RateLimitLayer,
};
pub use mesh_core::ConfigError;
pub use retry::{ExponentialBackoff, Retry, RetryLayer, RetryPolicy};
pub use timeout::{RequestTimeout, RequestTimeoutLayer, TimeoutConfig};
