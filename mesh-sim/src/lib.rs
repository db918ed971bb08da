//! A deterministic scenario kit for tower services: simulated endpoints with latency
//! distributions and fault schedules, an open-loop load driver on a paused tokio clock, and a
//! report of latency quantiles, success rate, per-endpoint shares, retry amplification and time
//! to ejection.
//!
//! It answers questions such as "with one endpoint twenty times slower, what happens to my p99?"
//! for *your* stack (a balancer, retries, breakers, any tower layers), in a test, in a second of
//! CPU time, with the same numbers on every run.
//!
//! # Types and data flow
//!
//! ```text
//! Scenario  rate, duration, seed, [EndpointSpec]            (what to simulate)
//!   EndpointSpec = mesh_core::Endpoint (address, locality)
//!                + Latency (Fixed | LogNormal { median, sigma })
//!                + [Fault] (from, until, FaultKind: Slow(×) | Status(code) | Reset | Refuse)
//!   │ run(build)
//!   ▼
//! Fleet     one SimEndpoint per spec, clock origin = now    (a tower Service each, Clone)
//!   │ build(&fleet) → your stack, e.g. a balancer over fleet.endpoint_list() / make_endpoint()
//!   ▼
//! Driver    GET at i ÷ rate, open loop: wait for the due time, poll_ready, call, spawn;
//!           each response body read to its end                → [RequestRecord]
//!   │                                                  endpoints log every attempt's time
//!   ▼
//! Report    p50 / p99 / p99.9, success rate, per-endpoint share, retry amplification,
//!           bad-endpoint share, time to ejection
//! ```
//!
//! - [`Latency`]: how long a healthy endpoint takes; log-normal with σ = [`DEFAULT_SIGMA`] (0.5)
//!   unless told otherwise. Endpoints do not queue: a latency does not depend on load.
//! - [`Fault`]: a window of virtual time (from the scenario start) in which an endpoint is slow,
//!   answers a status at once, resets connections after sending, or refuses them. The window's
//!   end is the recovery.
//! - [`SimEndpoint`]: the simulated endpoint, a `Service<http::Request<B>>` for any body, with
//!   mesh-core's errors ([`ConnectError`](mesh_core::error::ConnectError) for a refusal, a sent
//!   [`UpstreamError`](mesh_core::error::UpstreamError) for a reset), so retry policies and
//!   outlier detectors classify them as they would real ones.
//! - [`Driver`]: the open-loop arrival process; latency is measured from each request's *due*
//!   time, so waiting for readiness is charged (no coordinated omission).
//! - [`Report`]: what was measured; exact definitions on the type.
//!
//! # Determinism and the paused clock
//!
//! [`Scenario::run`] starts a current-thread tokio runtime with the clock paused
//! (`Builder::start_paused`, which needs tokio's `test-util` feature: this crate turns it on,
//! which is why it is a regular dependency here). The clock then only moves when every task
//! waits on a timer, and jumps straight to the next one. Every random draw comes from RNGs
//! seeded by the scenario's seed (give your stack seeds too, [`Fleet::seed`] and [`seed_for`]
//! help), so one seed gives one report, bit for bit.
//!
//! tokio's timers have **millisecond resolution**: a sleep ends on the first whole millisecond of
//! virtual time at or after its deadline. Sampled latencies are therefore rounded *up* to the
//! millisecond grid (a 4.2 ms draw is seen as 5 ms when the request starts on the grid), and so
//! are the reported quantiles. Compare stacks with each other, not with sub-millisecond
//! figures.
//!
//! # Example
//!
//! Four endpoints, one answering `503` from 2 s on, behind mesh-balance's balancer with its
//! default outlier ejection:
//!
//! ```
//! use std::time::Duration;
//!
//! use mesh_balance::discover::StaticDiscover;
//! use mesh_balance::{Balance, BalanceConfig};
//! use mesh_core::Endpoint;
//! use mesh_sim::{EndpointSpec, Fault, Latency, Scenario, seed_for};
//!
//! # fn main() -> Result<(), mesh_sim::SimError> {
//! let specs = (1..=4).map(|i| {
//!     let spec = EndpointSpec::new(
//!         Endpoint::new(([10, 0, 0, i], 8080).into()),
//!         Latency::log_normal(Duration::from_millis(5)),
//!     );
//!     if i == 1 { spec.fault(Fault::status(503, Duration::from_secs(2))) } else { spec }
//! });
//! let scenario = Scenario::new(200.0, Duration::from_secs(5)).endpoints(specs).seed(7);
//!
//! let report = scenario.run(|fleet| {
//!     let config = BalanceConfig::default().seed(seed_for(fleet.seed(), 100));
//!     Balance::new(StaticDiscover::new(fleet.endpoint_list()), fleet.make_endpoint(), config)
//! })?;
//!
//! assert_eq!(report.requests, 1000);
//! // Five 503s in a row eject the endpoint; without retries, those few requests fail.
//! assert!(report.success_rate > 0.99, "{report}");
//! let ejected_after = report.endpoints[0].time_to_ejection.expect("ejected");
//! assert!(ejected_after < Duration::from_millis(500), "{report}");
//! // The same seed, the same report.
//! # let again = scenario.run(|fleet| {
//! #     let config = BalanceConfig::default().seed(seed_for(fleet.seed(), 100));
//! #     Balance::new(StaticDiscover::new(fleet.endpoint_list()), fleet.make_endpoint(), config)
//! # })?;
//! # assert_eq!(report, again);
//! # Ok(())
//! # }
//! ```

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
