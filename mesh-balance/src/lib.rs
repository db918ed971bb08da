//! Load balancing for the mesh-* stack: discovery, P2C over PeakEWMA, outlier ejection, locality
//! tiers, consistent hashing.
//!
//! Data flow, from discovery to a connection:
//!
//! ```text
//! discovery stream of Change<EndpointKey, Endpoint>   (static, runtime handle, file, DNS)
//!   → one service per endpoint, built by a MakeEndpoint (e.g. mesh_core::client::HttpClient)
//!   → locality tier selection (best tier while its healthy share ≥ threshold, spill over below)
//!   → power-of-two-choices among eligible endpoints (ready, outlier gate open), by load ÷ weight,
//!     seeded RNG
//!   → hash mode: a request carrying the key moves to its ring endpoint in that tier
//!     (bounded load by requests in flight); without the key it keeps the P2C pick
//!   → a retry (mesh_core::attempts::TriedEndpoints in the request, put there by mesh-retry)
//!     moves off an endpoint it already tried to an untried ready one, if any
//!   → the response body is measured until it ends: PeakEWMA and pending count, outcome → gate
//!   → fail fast with NoEndpoints when nothing has been ready for a bounded time
//! ```
//!
//! - [`balance`]: [`Balance`], the clonable balancer service, and [`BalanceLayer`];
//! - [`load`]: how endpoints are compared ([`LoadStrategy`]: PeakEWMA, pending requests, round robin);
//! - [`eject`]: outlier ejection ([`OutlierConfig`]);
//! - [`locality`]: locality tiers and spill-over ([`LocalityConfig`]);
//! - [`slow_start`]: a new endpoint's weight ramps up ([`BalanceConfig::slow_start`]);
//! - [`hash`]: consistent hashing for stickiness by header, cookie or path, with bounded load
//!   ([`BalanceConfig::hash`], [`HashConfig`]; see
//!   [Consistent hashing](balance#consistent-hashing));
//! - [`discover`]: discovery sources; [`health`]: active health checks.
//!
//! Endpoints are [`mesh_core::Endpoint`] values keyed by [`mesh_core::EndpointKey`]; failures are
//! [`mesh_core::error::NoEndpoints`]; outcomes come from [`mesh_core::classify`].
//!
//! # Metrics
//!
//! A [`Balance`] records these through the OpenTelemetry API, with the
//! [`meter`](BalanceConfig::meter) of its config (default: the global provider's `mesh-balance`
//! meter, a no-op until the application installs one). Instruments are created once per balancer
//! and every attribute set is built in advance (per endpoint when discovery inserts it), so
//! recording allocates nothing per request. Each of those series is recorded once with 0 when it
//! is built (every ejection reason, tier route and state at the balancer's start; an endpoint's
//! `in_flight` when it is inserted): a series that appeared only at its first increment would
//! lose that increment to Prometheus' `increase()` and `rate()`, which need an earlier sample.
//!
//! | Name | Instrument | Unit | Attributes | Meaning |
//! |------|------------|------|------------|---------|
//! | `mesh.balance.endpoints` | up-down counter (i64) | `{endpoint}` | `mesh.balance.endpoint.state`: `ready`, `ejected`, `unready` | Endpoints in the set, by state. The states partition the set (their sum is the total): `ready` = ready and in rotation, `ejected` = ejected by its outlier gate whatever its readiness, `unready` = its service is not ready (or not polled yet). As of the balancer's last pick. |
//! | `mesh.balance.ejections` | counter (u64) | `{ejection}` | `mesh.balance.ejection.reason`: `consecutive`, `rate`, `probe` | Outlier ejections, by the detector that fired (`probe`: the single probe after an ejection failed, and the endpoint was ejected again, for longer). |
//! | `mesh.balance.panic.active` | up-down counter (i64) | `{balancer}` | none | 1 while the balancer is in panic mode (ejection ignored), 0 otherwise. |
//! | `mesh.balance.panic.entries` | counter (u64) | `{entry}` | none | Times the balancer entered panic mode: shows flapping that a scrape of `panic.active` misses. |
//! | `mesh.balance.requests` | counter (u64) | `{request}` | `mesh.balance.locality.tier`: `subzone`, `zone`, `region`, `any`; `mesh.balance.locality.spilled`: bool | Requests sent (counted at `call`), by the [locality tier](locality) of the endpoint that took them. `spilled` is true when that is not the best non-empty tier: the spill-over share is `spilled = true` over all. With no local locality every endpoint is in `any`. |
//! | `mesh.balance.endpoint.in_flight` | up-down counter (i64) | `{request}` | `server.address` (IP, string), `server.port` (int) | Requests sent to the endpoint whose response body has not ended yet. |
//!
//! The counts are up-down counters rather than gauges so that balancers sharing one meter add up:
//! each reports changes as deltas and takes its contribution back when its last clone is dropped.
//! To tell balancers apart (one per upstream service, say), give each its own meter, e.g.
//! `provider.meter_with_scope(scope)` with an `InstrumentationScope` carrying an attribute.
//!
//! Cardinality: `mesh.balance.endpoint.in_flight` has one attribute set per endpoint, so it is
//! bounded by the endpoint set, but with cumulative temporality an endpoint that left discovery
//! keeps being exported (at 0) for the life of the meter provider. Where endpoints churn a lot
//! (autoscaling, DNS), use delta temporality or drop the instrument with an SDK view; the SDK's
//! per-instrument cardinality limit (2000 by default) bounds it regardless. Every other attribute
//! takes a handful of fixed values.
//!
//! Discovery sources and health checks record metrics of their own; see [`discover`] and
//! [`health`].

pub mod balance;
pub mod discover;
pub mod eject;
pub mod hash;
pub mod load;
pub mod locality;
mod metrics;

pub use balance::{
    Balance, BalanceConfig, BalanceLayer, BalanceStatus, ConfigError, EndpointTicket, MakeEndpoint,
    MakeFailed, MeasuredBody, TryMadeEndpoint, TryMadeFuture, TryMake,
};
pub use eject::OutlierConfig;
pub use hash::HashConfig;
pub use load::{LoadStrategy, PeakEwmaConfig};
pub use locality::LocalityConfig;
pub mod health;
pub mod slow_start;
