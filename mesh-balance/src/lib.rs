//! Load balancing for the mesh-* stack: discovery, P2C over PeakEWMA, outlier ejection, locality tiers.
//!
//! Data flow, from discovery to a connection:
//!
//! ```text
//! discovery stream of Change<EndpointKey, Endpoint>   (static, runtime handle, file, DNS)
//!   → one service per endpoint, built by a MakeEndpoint (e.g. mesh_core::client::HttpClient)
//!   → locality tier selection (best tier while its healthy share ≥ threshold, spill over below)
//!   → power-of-two-choices among eligible endpoints (ready, outlier gate open), by load ÷ weight,
//!     seeded RNG
//!   → the response body is measured until it ends: PeakEWMA and pending count, outcome → gate
//!   → fail fast with NoEndpoints when nothing has been ready for a bounded time
//! ```
//!
//! - [`balance`]: [`Balance`], the clonable balancer service, and [`BalanceLayer`];
//! - [`load`]: how endpoints are compared ([`LoadStrategy`]: PeakEWMA, pending requests, round robin);
//! - [`eject`]: outlier ejection ([`OutlierConfig`]);
//! - [`locality`]: locality tiers and spill-over ([`LocalityConfig`]);
//! - [`discover`]: discovery sources; [`hash`]: consistent hashing.
//!
//! Endpoints are [`mesh_core::Endpoint`] values keyed by [`mesh_core::EndpointKey`]; failures are
//! [`mesh_core::error::NoEndpoints`]; outcomes come from [`mesh_core::classify`].

pub mod balance;
pub mod discover;
pub mod eject;
pub mod hash;
pub mod load;
pub mod locality;

pub use balance::{
    Balance, BalanceConfig, BalanceLayer, BalanceStatus, ConfigError, MakeEndpoint, MeasuredBody,
};
pub use eject::OutlierConfig;
pub use load::{LoadStrategy, PeakEwmaConfig};
pub use locality::LocalityConfig;
