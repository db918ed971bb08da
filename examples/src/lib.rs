//! Pieces shared by the example programs: command-line flags and per-endpoint traffic statistics.
//!
//! The programs themselves are the binaries of this package (`demo`, and later the sidecar, the
//! gateway and the scenario tools); see the package README.

pub mod args;
pub mod stats;
