//! Deadline arithmetic that cannot panic.
//!
//! `Instant + Duration` panics when the sum does not fit, and durations come from configuration and
//! from peers (`grpc-timeout`, `Retry-After`, ejection times that grow). Mesh layers compute their
//! deadlines with [`deadline_after`], which caps a deadline beyond reach at about 30 years from
//! `start` — later than any process will wait, and still a valid tokio timer.

use std::time::Duration;

use tokio::time::Instant;

/// How far away a deadline "beyond reach" is placed: 30 years, as tokio does for its own
/// far-future instants.
pub const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `start + after`, or `start` plus [`FAR_FUTURE`] when `after` is longer than that (or the sum
/// would not fit in an `Instant`).
///
/// ```
/// use std::time::Duration;
/// use mesh_core::time::{deadline_after, FAR_FUTURE};
/// use tokio::time::Instant;
///
/// let now = Instant::now();
/// assert_eq!(deadline_after(now, Duration::from_secs(2)), now + Duration::from_secs(2));
/// assert_eq!(deadline_after(now, Duration::MAX), now + FAR_FUTURE);
/// ```
pub fn deadline_after(start: Instant, after: Duration) -> Instant {
    let after = after.min(FAR_FUTURE);
    start.checked_add(after).unwrap_or(start)
}
