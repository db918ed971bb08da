//! The one error every mesh configuration type returns when a value is out of range.

use std::borrow::Cow;

/// A configuration value the layer cannot work with: the key that holds it and the reason.
///
/// Every config type in the mesh crates validates at one point (the layer's constructor or the
/// type's `validate()`) and fails with this error, so an application that loads settings from a
/// file can report every mistake the same way. The [`key`](Self::key) is the setting's name as
/// written on the config type, dotted for nested settings (`outliers.jitter`,
/// `slow_start.aggression`); a caller that nests the config further can
/// [prefix](Self::within) it with its own section.
///
/// # The convention every mesh config type follows
///
/// - `Default` holds the documented defaults; fields are private and the type is
///   `#[non_exhaustive]`, so settings can be added without breaking anyone.
/// - Setters are named after the setting, take `self` and return it
///   (`BalanceConfig::default().max_waiters(64)`), as hyper-util's builders do; they never fail.
/// - Getters, where another crate needs to read a value, are `get_` + the setting's name (the
///   bare name is the setter).
/// - Values are checked in one place: the constructor of the layer (or budget, or limiter) that
///   uses the config returns `Result<_, ConfigError>`, by calling the type's `validate()`, which
///   is public so a settings loader can check early.
///
/// ```
/// use mesh_core::ConfigError;
///
/// let err = ConfigError::new("max_attempts", "must be at least 1").within("retry");
/// assert_eq!(err.key(), "retry.max_attempts");
/// assert_eq!(err.to_string(), "invalid `retry.max_attempts`: must be at least 1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{key}`: {reason}")]
#[non_exhaustive]
pub struct ConfigError {
    key: Cow<'static, str>,
    reason: Cow<'static, str>,
}

impl ConfigError {
    /// The value under `key` is refused because of `reason` (a short phrase such as
    /// "must be at least 1").
    pub fn new(key: impl Into<Cow<'static, str>>, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The same error, with its key nested under `section` (`section.key`), for a config
    /// that holds another.
    #[must_use]
    pub fn within(self, section: &str) -> Self {
        Self {
            key: Cow::Owned(format!("{section}.{}", self.key)),
            reason: self.reason,
        }
    }

    /// The offending setting, as a dotted path.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Why the value was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
