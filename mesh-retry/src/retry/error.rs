//! Configuration errors of the retry policy.

/// A retry setting is out of range; the message names the key and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid retry setting `{key}`: {reason}")]
pub struct RetryConfigError {
    key: &'static str,
    reason: &'static str,
}

impl RetryConfigError {
    pub(crate) const fn new(key: &'static str, reason: &'static str) -> Self {
        Self { key, reason }
    }

    /// The name of the offending setting (`max_attempts`, `backoff`, …).
    pub fn key(&self) -> &'static str {
        self.key
    }
}
