//! [`LogLimiter`]: at most one log line per reason per interval.
//!
//! Some events repeat as fast as the network can bring them: a scanner hammering a TLS port with
//! bad certificates, an upstream refusing every connection during an outage. One `warn` line per
//! event would drown the rest of the log and cost more than the events themselves, while the
//! first line of each kind is what an operator needs. So mesh layers log such events through a
//! limiter: the first event of a reason is logged, the next ones within the interval are only
//! counted, and the next line logged for that reason carries the count (`suppressed = n`).
//!
//! The limiter is plain state owned by the layer that logs (clones share it); nothing is global.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Default interval of a [`LogLimiter`]: 10 s, so a steady stream of one bad event costs six lines
/// a minute, while a new kind of event is still seen at once.
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Lets through at most one log line per key per interval and counts the lines held back.
///
/// Keys are reasons, from a small fixed set (`&'static str` names, enum values): the limiter keeps
/// one entry per key it has seen, so a key built from peer data (an address, a certificate) would
/// let its memory grow without bound. Clones share the state.
///
/// ```
/// use std::time::Duration;
/// use mesh_core::log::LogLimiter;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let limiter = LogLimiter::new(Duration::from_secs(10));
/// assert_eq!(limiter.check("UnknownIssuer"), Some(0)); // logged
/// assert_eq!(limiter.check("UnknownIssuer"), None); // held back, counted
/// tokio::time::advance(Duration::from_secs(10)).await;
/// assert_eq!(limiter.check("UnknownIssuer"), Some(1)); // logged, with the count held back
/// # }
/// ```
pub struct LogLimiter<K = &'static str> {
    interval: Duration,
    windows: Arc<Mutex<HashMap<K, Window>>>,
}

struct Window {
    logged_at: Instant,
    suppressed: u64,
}

impl<K: Eq + Hash> LogLimiter<K> {
    /// A limiter letting one line per key through every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            windows: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Whether a line for `key` may be logged now: `Some(n)` when it may, `n` being how many lines
    /// for `key` were held back since the last one logged; `None` when it is held back (and
    /// counted).
    pub fn check(&self, key: K) -> Option<u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        match windows.get_mut(&key) {
            Some(window) if now.saturating_duration_since(window.logged_at) < self.interval => {
                window.suppressed = window.suppressed.saturating_add(1);
                None
            }
            Some(window) => {
                window.logged_at = now;
                Some(std::mem::take(&mut window.suppressed))
            }
            None => {
                windows.insert(
                    key,
                    Window {
                        logged_at: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

impl<K: Eq + Hash> Default for LogLimiter<K> {
    /// A limiter with [`DEFAULT_LOG_INTERVAL`].
    fn default() -> Self {
        Self::new(DEFAULT_LOG_INTERVAL)
    }
}

impl<K> Clone for LogLimiter<K> {
    fn clone(&self) -> Self {
        Self {
            interval: self.interval,
            windows: self.windows.clone(),
        }
    }
}

impl<K> fmt::Debug for LogLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLimiter")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_key_per_interval_with_the_count_held_back() {
        let limiter = LogLimiter::new(Duration::from_secs(10));
        let clone = limiter.clone();
        assert_eq!(limiter.check("a"), Some(0));
        assert_eq!(limiter.check("b"), Some(0), "keys are limited separately");
        for _ in 0..4 {
            assert_eq!(clone.check("a"), None, "clones share the state");
        }
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert_eq!(limiter.check("a"), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(limiter.check("a"), Some(5));
        assert_eq!(limiter.check("a"), None);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(limiter.check("a"), Some(1));
        assert_eq!(limiter.check("b"), Some(0));
    }
}
