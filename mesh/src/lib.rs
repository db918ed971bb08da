#![doc = include_str!("../README.md")]

mod client;
mod error;
mod server;
#[cfg(feature = "xds")]
pub mod xds;

pub use client::{Client, ClientBuilder, DEFAULT_CLIENT_TIMEOUT, EndpointService, ResponseFuture};
pub use error::{ConfigError, ServeError};
pub use server::{ServerBuilder, ServerHandle};

/// The shared vocabulary: endpoints, classification, failure types, body, HTTP client and server
/// (crate `towermesh-core`, imported on its own as `mesh_core`).
pub use mesh_core as core;

/// Discovery, the balancer, outlier ejection, locality tiers (crate `towermesh-balance`).
pub use mesh_balance as balance;

/// Retries and budgets, replayable bodies, hedging, timeouts, the circuit breaker and limits
/// (crate `towermesh-retry`).
pub use mesh_retry as retry;

/// SPIFFE identity, TLS connect and accept, authorization (crate `towermesh-tls`).
pub use mesh_tls as tls;

/// Trace propagation, spans and request metrics, exporters (crate `towermesh-observe`).
pub use mesh_observe as observe;

pub use mesh_core::{Body, BoxError, Endpoint};
