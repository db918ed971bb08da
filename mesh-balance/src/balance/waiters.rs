//! The callers waiting for an endpoint to become ready, behind one fan-out waker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use crate::load::lock;

/// Every endpoint service and the discovery stream are polled with one waker built from this
/// type, whichever caller happens to poll them. Waking it marks the set *dirty* (something may
/// have become ready) and wakes every registered caller, so no caller depends on being the last
/// one to have polled a given endpoint (the lost-wakeup trap of sharing services between tasks).
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    dirty: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Waiters {
    /// Whether anything woke the set since the last call, clearing the flag.
    pub(crate) fn take_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire) && self.dirty.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Registers a caller; `false` when `max` callers already wait.
    pub(crate) fn register(&self, waker: &Waker, max: usize) -> bool {
        let mut wakers = lock(&self.wakers);
        if wakers.iter().any(|w| w.will_wake(waker)) {
            return true;
        }
        if wakers.len() >= max {
            return false;
        }
        wakers.push(waker.clone());
        true
    }

    /// Forgets a caller that stopped waiting.
    pub(crate) fn remove(&self, waker: &Waker) {
        lock(&self.wakers).retain(|w| !w.will_wake(waker));
    }

    /// Wakes every waiting caller (they re-poll the balancer and re-register if still waiting).
    pub(crate) fn wake_all(&self) {
        let wakers = std::mem::take(&mut *lock(&self.wakers));
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.mark_dirty();
        self.wake_all();
    }
}
