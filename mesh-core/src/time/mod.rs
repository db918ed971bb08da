//! Time for the layers: deadline arithmetic that cannot panic, and timers reused from request to
//! request.
//!
//! - `Instant + Duration` panics when the sum does not fit, and durations come from configuration
//!   and from peers (`grpc-timeout`, `Retry-After`, ejection times that grow). Mesh layers compute
//!   their deadlines with [`deadline_after`], which caps a deadline beyond reach at about 30 years
//!   from `start` — later than any process will wait, and still a valid tokio timer.
//! - A timer armed for every request (a request timeout, a per-try timeout, a hedge delay) is a
//!   [`PooledSleep`]: a tokio `Sleep` taken from a per-thread pool and given back when the request
//!   ends, so that arming it is usually a single atomic update instead of an insertion into (and
//!   later a removal from) tokio's timer wheel.
//! - The layers read the time with [`now`], which inside a [`PollClock`] scope (each poll of a
//!   connection's task, in mesh-core's server and client) reads tokio's clock once and shares
//!   that reading, instead of a dozen reads per request.

use std::time::Duration;

use tokio::time::Instant;

mod poll_clock;
mod pooled;

pub use poll_clock::{PollClock, now};
pub use pooled::{POOL_CAPACITY, PooledSleep};

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
