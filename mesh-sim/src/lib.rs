#![doc = include_str!("../README.md")]

mod driver;
mod endpoint;
mod fault;
mod latency;
mod report;
mod scenario;

pub use driver::{Driver, MAX_ARRIVALS, REQUEST_URI, RequestOutcome, RequestRecord};
pub use endpoint::{EndpointSpec, Fleet, ResponseFuture, SimEndpoint};
pub use fault::{Fault, FaultKind};
pub use latency::{DEFAULT_SIGMA, Latency, MAX_LATENCY};
pub use report::{EndpointReport, Report};
pub use scenario::Scenario;

use mesh_core::BoxError;

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A setting out of range: `key` names it (`rate`, `latency.sigma`, `fault.status` …).
    #[error("invalid scenario setting `{key}`: {reason}")]
    Config {
        /// The setting.
        key: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The stack under test could not be built (the builder's own error).
    #[error("the stack under test could not be built: {0}")]
    Build(#[source] BoxError),
    /// The tokio runtime could not be started.
    #[error("the simulation runtime could not be started: {0}")]
    Runtime(#[source] std::io::Error),
}

impl SimError {
    pub(crate) fn config(key: &'static str, reason: &'static str) -> Self {
        SimError::Config { key, reason }
    }
}

/// A seed for stream `stream` derived from `seed` (SplitMix64 of both): distinct streams of one
/// seed are unrelated, so the endpoints, the balancer and the retry jitter can each have their
/// own from one scenario seed. The endpoints use streams 1, 2, 3 … (one per endpoint, in order);
/// use numbers from 100 up for your stack.
pub fn seed_for(seed: u64, stream: u64) -> u64 {
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
