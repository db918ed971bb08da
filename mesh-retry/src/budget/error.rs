//! Configuration errors of the budgets.

/// A budget configuration value is out of range; the message names the key and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid retry budget setting `{key}`: {reason}")]
pub struct BudgetConfigError {
    key: &'static str,
    reason: &'static str,
}

impl BudgetConfigError {
    pub(crate) const fn new(key: &'static str, reason: &'static str) -> Self {
        Self { key, reason }
    }

    /// The name of the offending setting (`ratio`, `window`, …).
    pub fn key(&self) -> &'static str {
        self.key
    }
}
