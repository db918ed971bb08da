//! Pieces shared by the example programs: command-line flags, per-endpoint traffic statistics,
//! the sidecar's and the gateway's TOML configurations and the outbound client stack.
//!
//! The programs themselves are the binaries of this package (`demo`, and later the sidecar, the
//! gateway and the scenario tools); see the package README.

pub mod args;
pub mod config;
pub mod gateway_config;
pub mod stack;
pub mod stats;
