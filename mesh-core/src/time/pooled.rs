//! [`PooledSleep`]: a tokio timer reused from request to request (see its docs).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;
use tokio::runtime::{Handle, Id};
use tokio::time::{Instant, Sleep, sleep_until};

/// How many idle timers a thread keeps for reuse: 256. A thread with more requests in flight than
/// that arms fresh timers for the rest, as it would without a pool. Each idle timer is one small
/// allocation (a `Sleep`, about a hundred bytes).
pub const POOL_CAPACITY: usize = 256;

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            runtime: None,
            idle: Vec::new(),
        })
    };
}

/// One thread's idle timers, all of `runtime`.
struct Pool {
    runtime: Option<Id>,
    idle: Vec<Pin<Box<Timer>>>,
}

/// A timer and the runtime it is filed with (the one current when it was made), boxed together
/// so that a [`PooledSleep`] is one pointer.
#[pin_project]
struct Timer {
    #[pin]
    sleep: Sleep,
    runtime: Option<Id>,
}

impl Pool {
    /// An idle timer of `runtime`, the most recently given back (its deadline is the latest, so
    /// the next one is most likely later). A pool of another runtime is emptied.
    fn take(&mut self, runtime: Id) -> Option<Pin<Box<Timer>>> {
        if self.runtime != Some(runtime) {
            self.idle.clear();
            self.runtime = Some(runtime);
            return None;
        }
        self.idle.pop()
    }

    /// Keeps `timer` if it is of this pool's runtime and there is room; otherwise hands it back
    /// (to be dropped by the caller, outside the pool's borrow).
    fn give(&mut self, timer: Pin<Box<Timer>>) -> Option<Pin<Box<Timer>>> {
        if timer.runtime.is_some()
            && timer.runtime == self.runtime
            && self.idle.len() < POOL_CAPACITY
        {
            self.idle.push(timer);
            None
        } else {
            Some(timer)
        }
    }
}

/// A timer for one request, taken from a per-thread pool and given back when dropped. It behaves
/// as `tokio::time::sleep_until`'s `Sleep`: it completes once its deadline has passed,
/// [`reset`](Self::reset) moves it, and dropping it disarms it. It is `Unpin`, and one pointer
/// (the `Sleep` itself is boxed, and the box reused).
///
/// # Why
///
/// A fresh `tokio::time::Sleep` per request is filed into the runtime's timer wheel on its first
/// poll and taken out again when it is dropped, each time under the time driver's lock: about 400
/// instructions per proxied request in mesh-sidecar (callgrind), for a request timeout that almost
/// never fires. Moving a timer that is still filed to a *later* deadline costs one atomic
/// compare-and-swap instead (the pool's own bookkeeping is about half the saving): tokio records
/// the new deadline and files the entry again only when the wheel reaches its old slot. The
/// requests of a client share one timeout and start one after another, so the next request's
/// deadline is later than the last one's: a timer kept when a request ends serves the next
/// request for the price of that swap.
///
/// # How
///
/// - Each thread keeps up to [`POOL_CAPACITY`] idle timers. A timer is taken from the pool of the
///   thread that arms it and given back to the pool of the thread that drops it; past the
///   capacity it is dropped (taken out of the wheel) as a plain `Sleep` is.
/// - An idle timer stays filed with its last deadline. If no request takes it by then, it fires
///   once and wakes the task that polled it last: a spurious wake-up, which futures tolerate. The
///   request that takes it next files it again, as a fresh timer would be. So a thread's idle
///   timers cost at most one wake-up each per timeout period.
/// - A timer belongs to the runtime whose driver it is filed with, so a pool holds the timers of
///   one runtime: arming a timer under another runtime empties the pool and starts it afresh,
///   and a timer given back under another runtime than its own is dropped. The last runtime's
///   idle timers (and with them its timer driver, which they keep alive) can outlive that
///   runtime until the thread arms a timer under another one, or ends.
/// - Outside a runtime, [`PooledSleep::until`] panics, as `tokio::time::sleep_until` does.
///
/// ```
/// use std::time::Duration;
/// use mesh_core::time::PooledSleep;
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let start = Instant::now();
/// PooledSleep::until(start + Duration::from_secs(2)).await;
/// assert_eq!(start.elapsed(), Duration::from_secs(2));
/// # }
/// ```
pub struct PooledSleep {
    /// `None` only while being dropped.
    timer: Option<Pin<Box<Timer>>>,
}

impl PooledSleep {
    /// A timer completing at `deadline`: an idle one of this thread's pool moved to `deadline`,
    /// or a new one.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with its time driver enabled, as `tokio::time::sleep_until` does.
    #[track_caller]
    pub fn until(deadline: Instant) -> Self {
        let runtime = Handle::try_current().ok().map(|handle| handle.id());
        let reused = runtime.and_then(|id| {
            POOL.try_with(|pool| pool.try_borrow_mut().ok()?.take(id))
                .ok()
                .flatten()
        });
        let timer = match reused {
            Some(mut timer) => {
                timer.as_mut().project().sleep.reset(deadline);
                timer
            }
            None => Box::pin(Timer {
                sleep: sleep_until(deadline),
                runtime,
            }),
        };
        Self { timer: Some(timer) }
    }

    /// Arms the timer of `slot` for `deadline`: moves the one it holds, or takes one into it (for
    /// a future whose timer exists only once needed, as a backoff or a body's idle clock).
    pub fn arm(slot: &mut Option<Self>, deadline: Instant) -> &mut Self {
        match slot {
            Some(timer) => {
                timer.reset(deadline);
                timer
            }
            None => slot.insert(Self::until(deadline)),
        }
    }

    /// Moves the timer to `deadline` (later or earlier), as `Sleep::reset` does.
    pub fn reset(&mut self, deadline: Instant) {
        if let Some(timer) = &mut self.timer {
            timer.as_mut().project().sleep.reset(deadline);
        }
    }

    /// The instant the timer completes at.
    pub fn deadline(&self) -> Instant {
        self.timer
            .as_ref()
            .map_or_else(Instant::now, |timer| timer.sleep.deadline())
    }

    /// Whether the deadline has passed and the timer fired, without polling it.
    pub fn is_elapsed(&self) -> bool {
        self.timer
            .as_ref()
            .is_some_and(|timer| timer.sleep.is_elapsed())
    }
}

impl Future for PooledSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.timer {
            Some(timer) => timer.as_mut().project().sleep.poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Drop for PooledSleep {
    fn drop(&mut self) {
        let Some(timer) = self.timer.take() else {
            return;
        };
        // While the thread is ending (its pool gone) the timer is dropped here, as it is when the
        // pool is full or of another runtime: after the pool's borrow, never inside it.
        let _refused = POOL.try_with(move |pool| match pool.try_borrow_mut() {
            Ok(mut pool) => pool.give(timer),
            Err(_) => Some(timer),
        });
    }
}

impl fmt::Debug for PooledSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledSleep")
            .field(
                "deadline",
                &self.timer.as_ref().map(|timer| timer.sleep.deadline()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The address of the `Sleep` a timer uses: the same address means the same boxed timer.
    fn address(sleep: &PooledSleep) -> *const Timer {
        let boxed = sleep.timer.as_ref().expect("an armed timer");
        &**boxed as *const Timer
    }

    fn idle_in_pool() -> usize {
        POOL.with(|pool| pool.borrow().idle.len())
    }

    /// Awaits `timer` and checks it took `after` of the paused clock.
    async fn assert_fires_after(timer: PooledSleep, after: Duration) {
        let before = Instant::now();
        timer.await;
        assert_eq!(before.elapsed(), after);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_timer_given_back_serves_the_next_request_and_fires_at_its_deadline() {
        let start = Instant::now();
        let first = PooledSleep::until(start + Duration::from_secs(10));
        let first_at = address(&first);
        drop(first);
        assert_eq!(idle_in_pool(), 1);

        // Later deadline (the usual case): the same timer, moved.
        let second = PooledSleep::until(start + Duration::from_secs(12));
        assert_eq!(address(&second), first_at, "the pooled timer is reused");
        assert_eq!(idle_in_pool(), 0);
        second.await;
        assert_eq!(start.elapsed(), Duration::from_secs(12));

        // Earlier deadline than the timer's last one: reused too, and fires at the earlier one.
        let third = PooledSleep::until(start + Duration::from_secs(13));
        let third_at = address(&third);
        drop(third);
        let fourth = PooledSleep::until(Instant::now() + Duration::from_millis(5));
        assert_eq!(address(&fourth), third_at);
        assert_fires_after(fourth, Duration::from_millis(5)).await;
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn an_idle_timer_that_fired_is_filed_again_when_reused() {
        let start = Instant::now();
        drop(PooledSleep::until(start + Duration::from_secs(1)));
        // Nothing takes it before its deadline: it fires while idle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let timer = PooledSleep::until(Instant::now() + Duration::from_secs(3));
        assert!(!timer.is_elapsed(), "re-armed, not left fired");
        assert_fires_after(timer, Duration::from_secs(3)).await;
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_dropped_timer_does_not_fire_for_its_next_user_early() {
        let start = Instant::now();
        // Two requests in flight: two timers, given back in turn.
        let a = PooledSleep::until(start + Duration::from_secs(5));
        let b = PooledSleep::until(start + Duration::from_secs(6));
        drop(a);
        drop(b);
        assert_eq!(idle_in_pool(), 2);
        let c = PooledSleep::until(start + Duration::from_secs(9));
        let d = PooledSleep::until(start + Duration::from_secs(8));
        let (c_done, d_done) = tokio::join!(
            async {
                c.await;
                Instant::now()
            },
            async {
                d.await;
                Instant::now()
            }
        );
        assert_eq!(c_done - start, Duration::from_secs(9));
        assert_eq!(d_done - start, Duration::from_secs(8));
    }

    #[test]
    fn a_pool_holds_the_timers_of_one_runtime_only() {
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let first_id = first.handle().id();
        first.block_on(async {
            drop(PooledSleep::until(Instant::now() + Duration::from_secs(60)));
        });
        assert_eq!(idle_in_pool(), 1);
        drop(first);

        let second = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        second.block_on(async {
            // The first runtime's timer is not handed out: the pool starts afresh.
            let timer = PooledSleep::until(Instant::now() + Duration::from_millis(10));
            assert_eq!(idle_in_pool(), 0);
            POOL.with(|pool| assert_ne!(pool.borrow().runtime, Some(first_id)));
            timer.await;
        });
        // Given back to this runtime's pool.
        assert_eq!(idle_in_pool(), 1);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_pool_keeps_at_most_its_capacity() {
        let deadline = Instant::now() + Duration::from_secs(1);
        let timers: Vec<_> = (0..POOL_CAPACITY + 10)
            .map(|_| PooledSleep::until(deadline))
            .collect();
        drop(timers);
        assert_eq!(idle_in_pool(), POOL_CAPACITY);
    }
}
