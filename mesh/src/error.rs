//! The builders' errors: a setting they refuse ([`ConfigError`]) and a server that cannot start
//! ([`ServeError`]).

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;

/// A builder setting that cannot be used; [`key`](Self::key) names it (`identity`,
/// `breaker`, `balance.outliers.jitter` …) and [`reason`](Self::reason) says why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{key}`: {reason}")]
pub struct ConfigError {
    key: Cow<'static, str>,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<Cow<'static, str>>, reason: impl ToString) -> Self {
        Self {
            key: key.into(),
            reason: reason.to_string(),
        }
    }

    /// The setting, as the builder's setter names it (dotted into a layer's config).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
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
