//! The builders' errors: a setting they refuse ([`ConfigError`]) and a server that cannot start
//! ([`ServeError`]).

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;

/// A builder setting that cannot be used: mesh-core's one config error, whose
/// [`key`](ConfigError::key) names the setting (`identity`, `breaker`,
/// `balance.outliers.jitter` …) and whose [`reason`](ConfigError::reason) says why.
pub use mesh_core::ConfigError;

/// A [`ConfigError`] for `key` from any displayable reason.
pub(crate) fn invalid(key: impl Into<Cow<'static, str>>, reason: impl ToString) -> ConfigError {
    ConfigError::new(key, reason.to_string())
}

/// A [`ServerBuilder`](crate::ServerBuilder) could not start serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A setting was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address given to [`bind`](crate::ServerBuilder::bind).
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// The listener's local address could not be read.
    #[error("cannot read the listener's address: {0}")]
    Listener(io::Error),
}
