//! [`RetryLimit`]: a bound on retries in flight, shared by every request of a layer.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// The most retries in flight at once over every request of a [`RetryLayer`](super::RetryLayer)
/// (Envoy's `max_retries` circuit breaker), on top of the budget.
///
/// A retry counts from the moment it is decided (its backoff included) until its attempt has an
/// outcome. When the bound is reached, the layer returns the failure it already has, as when the
/// budget is empty, and counts it in `mesh.retry.budget_exhausted`. Clones share the count and
/// the bound; [`set_max`](Self::set_max) changes the bound for every request from its next
/// retry decision (retries already in flight are not cut short).
///
/// Two requests deciding at once never both take the last slot (a compare-and-swap takes it): the
/// bound is exact.
#[derive(Clone)]
pub struct RetryLimit {
    inner: Arc<Inner>,
}

struct Inner {
    max: AtomicU32,
    in_flight: AtomicU32,
}

impl RetryLimit {
    /// At most `max` retries in flight; `u32::MAX` means no bound, 0 means no retry at all.
    pub fn new(max: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                max: AtomicU32::new(max),
                in_flight: AtomicU32::new(0),
            }),
        }
    }

    /// No bound (`u32::MAX`): only the budget limits retries.
    pub fn unbounded() -> Self {
        Self::new(u32::MAX)
    }

    /// Changes the bound for every request sharing this limit.
    pub fn set_max(&self, max: u32) {
        self.inner.max.store(max, Ordering::Relaxed);
    }

    /// The bound.
    pub fn get_max(&self) -> u32 {
        self.inner.max.load(Ordering::Relaxed)
    }

    /// Retries in flight now.
    pub fn in_flight(&self) -> u32 {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// Takes a slot, or `None` when the bound is reached.
    pub(crate) fn try_acquire(&self) -> Option<RetryPermit> {
        let max = self.inner.max.load(Ordering::Relaxed);
        self.inner
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(RetryPermit {
            inner: Arc::clone(&self.inner),
        })
    }
}

impl Default for RetryLimit {
    fn default() -> Self {
        Self::unbounded()
    }
}

impl fmt::Debug for RetryLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLimit")
            .field("max", &self.get_max())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// One retry's slot under a [`RetryLimit`], given back when dropped.
pub(crate) struct RetryPermit {
    inner: Arc<Inner>,
}

impl Drop for RetryPermit {
    fn drop(&mut self) {
        self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_up_to_the_bound_and_given_back() {
        let limit = RetryLimit::new(2);
        let a = limit.try_acquire().unwrap();
        let _b = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        assert_eq!(limit.in_flight(), 2);
        drop(a);
        assert!(limit.try_acquire().is_some());
        limit.set_max(0);
        assert!(limit.try_acquire().is_none());
        assert!(RetryLimit::unbounded().try_acquire().is_some());
    }
}
