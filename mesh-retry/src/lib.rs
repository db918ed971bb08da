//! Resilience layers for the mesh-* stack: retries with budgets, replayable bodies, hedging, deadlines,
//! circuit breaking and limits.
//!
//! **Status: skeleton.** The crate's API is not implemented yet; this page is the plan it will follow.
//!
//! ```text
//! request → timeout (overall deadline, grpc-timeout in and out)
//!         → retry (+ hedge): policy from mesh_core::classify, retry budget, bounded replay buffer
//!         → circuit breaker: closed → open → half-open, as a readiness gate
//!         → inner service (usually mesh-balance)
//! ```
//!
//! Failures are mesh-core's types: [`mesh_core::error::BudgetExhausted`],
//! [`mesh_core::error::CircuitOpen`], [`mesh_core::error::Timeout`],
//! [`mesh_core::error::RateLimited`] and [`mesh_core::error::Overloaded`].

pub mod breaker;
pub mod limit;
