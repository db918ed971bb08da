//! Limits: how much traffic a service takes — [`concurrency`] (fixed or adaptive) and
//! [`rate`] (token bucket, optionally per key).
//!
//! All of them **fail fast** by default, with mesh-core's typed failures so a proxy edge maps them
//! to the right status: [`Overloaded`] (503) from the concurrency limit, [`RateLimited`] (429, with
//! the wait until the next token as `Retry-After`) from the rate limit. All are `Clone` with shared
//! state (tower's `RateLimit` is not `Clone`, tower #794).
//!
//! **Metrics** (OpenTelemetry, meter from the config or the global `mesh-retry` meter; every point
//! carries `mesh.limit.kind` = `concurrency` or `rate`, and `mesh.limit.name` when configured):
//! `mesh.limit.rejected` (requests refused with `Overloaded` / `RateLimited`) and
//! `mesh.limit.concurrency` (the current concurrency limit); units and attributes are in the
//! [crate's metric table](crate#metrics).
//!
//! [`Overloaded`]: mesh_core::error::Overloaded
//! [`RateLimited`]: mesh_core::error::RateLimited

pub mod concurrency;
mod metrics;
pub mod rate;

pub use concurrency::{
    ConcurrencyConfig, ConcurrencyLimit, ConcurrencyLimitLayer, LimitAlgorithm, LimitHandle,
    OverLimit, Vegas, VegasConfig,
};
pub use rate::{KeyExtractor, RateLimit, RateLimitConfig, RateLimitLayer};
