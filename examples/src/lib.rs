//! Pieces shared by the example programs: command-line flags, per-endpoint traffic statistics,
//! the sidecar's and the gateway's TOML configurations, the outbound client stack, the admin
//! listener, the proxies' process plumbing (telemetry, identity files, listeners, drain), their
//! log subscriber, the identity files' startup check and generation tool, and the child-process
//! handling of the benchmark and soak tools.
//!
//! The programs themselves are the binaries of this package (`demo`, `mesh-sidecar`,
//! `mesh-gateway`, `embedded-axum`, `embedded-tonic`); see the package README.

pub mod admin;
pub mod args;
pub mod children;
pub mod config;
pub mod gateway_config;
pub mod identity;
pub mod logging;
pub mod runtime;
pub mod stack;
pub mod stats;
pub mod telemetry;
