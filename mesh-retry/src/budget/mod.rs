//! Retry budgets: how many retries the whole client may add on top of its requests.
//!
//! Per-request limits ("at most 3 attempts") do not stop a retry storm: when a backend slows
//! down, *every* request fails and *every* request retries, multiplying the load on the backend
//! that is already struggling. A budget caps the retries of all requests together, so retries
//! help with scattered failures and switch off during an outage.
//!
//! [`RetryBudget`] is the trait the [retry layer](crate::retry) talks to; two implementations
//! ship here:
//!
//! - [`WindowBudget`] (the default): retries may add at most a ratio of the request volume (20 %)
//!   plus a minimum rate (10 per second) over a sliding window (10 s), the Finagle/Linkerd model.
//!   The arithmetic is integer and exact for any ratio with four decimal places, so 0.1, 0.25,
//!   0.6 and 0.9 allow exactly the retries they promise (tower's `TpsBudget` allows too many for
//!   some fractions, tower issue 857).
//! - [`TokenBucketBudget`]: gRPC retry throttling (gRPC proposal A6): failures drain a bucket,
//!   successes refill it by a fraction, retries stop while it is at or below half full.
//!
//! Both are cheap to clone and every clone shares the same state, so one budget can be given to
//! many layers (say, every route to the same backend).
//!
//! ```
//! use std::time::Duration;
//! use mesh_retry::budget::{RetryBudget, WindowBudget, WindowBudgetConfig};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let budget = WindowBudget::new(
//!     WindowBudgetConfig::default().ratio(0.25).min_per_sec(0),
//! )
//! .unwrap();
//! for _ in 0..8 {
//!     budget.deposit();
//! }
//! // 25 % of 8 requests: exactly two retries.
//! assert!(budget.withdraw());
//! assert!(budget.withdraw());
//! assert!(!budget.withdraw());
//! # }
//! ```

mod token_bucket;
mod window;

pub use token_bucket::{TokenBucketBudget, TokenBucketConfig};
pub use window::{WindowBudget, WindowBudgetConfig};

use std::fmt;

/// A shared allowance of retries, consulted by the [retry layer](crate::retry).
///
/// The layer calls [`deposit`](Self::deposit) once for every request it receives (never for
/// retries), [`record`](Self::record) once for every attempt whose outcome it classified, and
/// [`withdraw`](Self::withdraw) before every retry it wants to send. When `withdraw` says no, the
/// layer returns the failure it already has, unchanged.
///
/// Implementations are shared by many services and tasks, hence `Send + Sync`; every method must
/// be cheap and must not block for long (a short uncontended lock is fine).
pub trait RetryBudget: fmt::Debug + Send + Sync {
    /// A request (not a retry) was received.
    fn deposit(&self);

    /// Asks for one retry; `true` grants it and counts it against the budget.
    fn withdraw(&self) -> bool;

    /// The outcome of one attempt: `success` is `false` for a failure the classifier reported.
    ///
    /// Budgets that only count volume ignore it (the default); [`TokenBucketBudget`] is driven
    /// by it.
    fn record(&self, success: bool) {
        let _ = success;
    }
}

impl<T: RetryBudget + ?Sized> RetryBudget for std::sync::Arc<T> {
    fn deposit(&self) {
        (**self).deposit();
    }

    fn withdraw(&self) -> bool {
        (**self).withdraw()
    }

    fn record(&self, success: bool) {
        (**self).record(success);
    }
}
