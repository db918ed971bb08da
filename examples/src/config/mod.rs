//! The sidecar's TOML configuration: [`load`] reads and checks a file and returns a
//! [`Sidecar`] whose every value is already usable (addresses parsed, identity files present,
//! retry / budget / breaker / ejection settings accepted by the mesh-* crates), or a
//! [`ConfigError`] naming the key and the reason.
//!
//! ```
//! let text = r#"
//!     [listeners]
//!     inbound = "127.0.0.1:4143"
//!     outbound = "127.0.0.1:4140"
//!     admin = "127.0.0.1:4191"
//!     [app]
//!     address = "127.0.0.1:8080"
//!     [identity]
//!     cert = "/nonexistent/cert.pem"
//!     key = "/nonexistent/key.pem"
//!     bundles = { "prod.example" = "/nonexistent/bundle.pem" }
//! "#;
//! let err = mesh_examples::config::parse(text, std::path::Path::new("/")).unwrap_err();
//! assert_eq!(err.key(), Some("identity.cert"));
//! ```
//!
//! The file's shape is [`SidecarConfig`] and the tables under it; unknown keys are errors.
//! Relative file paths are taken from the configuration file's directory.

mod model;
mod resolve;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use model::{
    AppConfig, AuthorizationConfig, BreakerSettings, BudgetConfig, DiscoveryConfig, EjectionConfig,
    EndpointConfig, IdentityConfig, LimitName, Listeners, LocalityConfig, PoolConfig, ProtocolName,
    RetryConfig, RuleAction, RuleConfig, ServiceConfig, SidecarConfig, TransportName,
    VegasSettings, XdsProtocolName, XdsSettings,
};
pub use resolve::{App, Discovery, Identity, Service, Sidecar, Transport, Xds};
pub(crate) use resolve::{identity as resolve_identity, service as resolve_service};

/// Why a configuration was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// Not valid TOML, or not the expected shape (unknown or missing key, wrong type). The
    /// message carries toml's line, column and the offending key.
    Syntax(String),
    /// A value of the right type that cannot be used.
    Invalid {
        /// The dotted path of the key, e.g. `services.orders.retry.max_attempts`.
        key: String,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigError::Syntax(message) => f.write_str(message.trim_end()),
            ConfigError::Invalid { key, reason } => write!(f, "`{key}`: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A layer's own validation error, as [`Invalid`](ConfigError::Invalid) under the same key; nest
/// it first ([`within`](mesh_core::ConfigError::within)) so the key is the dotted TOML path.
impl From<mesh_core::ConfigError> for ConfigError {
    fn from(error: mesh_core::ConfigError) -> Self {
        ConfigError::invalid(error.key(), error.reason())
    }
}

impl ConfigError {
    /// The key at fault, for [`Invalid`](Self::Invalid).
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    pub(crate) fn invalid(key: impl Into<String>, reason: impl ToString) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

/// Reads `path` and checks it; relative paths inside are taken from its directory.
pub fn load(path: &Path) -> Result<Sidecar, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    parse(&text, base)
}

/// Parses and checks `text`; relative paths inside are taken from `base`.
pub fn parse(text: &str, base: &Path) -> Result<Sidecar, ConfigError> {
    let raw: SidecarConfig =
        toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
    resolve::resolve(raw, base)
}
