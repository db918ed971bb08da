//! The request deadline, as a request extension.

use mesh_core::time::deadline_after;
use std::time::Duration;

use tokio::time::Instant;

/// The instant by which a request must be answered, carried in the request extensions.
///
/// [`RequestTimeoutLayer`](super::RequestTimeoutLayer) inserts it; inner layers read it to learn
/// the time left (the retry layer does not start a retry that could not finish in time, and
/// refreshes `grpc-timeout` from it). A layer that sets a new deadline keeps the earlier of the
/// two, so a deadline only ever gets shorter on the way in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(Instant);

impl Deadline {
    /// A deadline at `at`.
    pub fn at(at: Instant) -> Self {
        Self(at)
    }

    /// A deadline `timeout` from now; a timeout beyond about 30 years is capped there
    /// ([`deadline_after`]) instead of overflowing.
    pub fn after(timeout: Duration) -> Self {
        Self(deadline_after(mesh_core::time::now(), timeout))
    }

    /// The instant itself.
    pub fn instant(self) -> Instant {
        self.0
    }

    /// The time left from now; zero once passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(mesh_core::time::now())
    }

    /// Whether the deadline has passed.
    pub fn is_expired(self) -> bool {
        mesh_core::time::now() >= self.0
    }
}
