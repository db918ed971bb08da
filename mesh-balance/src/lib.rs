//! Load balancing for the mesh-* stack: discovery, P2C over PeakEWMA, outlier ejection, locality tiers.
//!
//! **Status: skeleton.** The crate's API is not implemented yet; this page is the plan it will follow.
//!
//! Data flow, from discovery to a connection:
//!
//! ```text
//! discovery stream of Change<EndpointKey, Endpoint>   (static, runtime handle, file, DNS)
//!   → per-endpoint stack: outlier gate (readiness) → load measure (PeakEWMA until body end)
//!                          → mesh_core::client::HttpClient → connector
//!   → locality tier selection (best tier while its healthy share ≥ threshold, spill over below)
//!   → power-of-two-choices pick by load ÷ weight, seeded RNG
//!   → fail fast with NoEndpoints when nothing has been ready for a bounded time
//! ```
//!
//! Endpoints are [`mesh_core::Endpoint`] values keyed by [`mesh_core::EndpointKey`]; failures are
//! [`mesh_core::error::NoEndpoints`]; outcomes come from [`mesh_core::classify`].

pub mod discover;
pub mod hash;
