//! Sliding windows of call outcomes: the last N calls, or the last N seconds.

use tokio::time::Instant;

use super::config::SlidingWindow;

/// Running totals over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Totals {
    pub(super) calls: u32,
    pub(super) failures: u32,
    pub(super) slow: u32,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.calls += other.calls;
        self.failures += other.failures;
        self.slow += other.slow;
    }

    fn sub(&mut self, other: Totals) {
        self.calls -= other.calls;
        self.failures -= other.failures;
        self.slow -= other.slow;
    }

    fn one(failed: bool, slow: bool) -> Totals {
        Totals {
            calls: 1,
            failures: u32::from(failed),
            slow: u32::from(slow),
        }
    }
}

/// Either window, with the totals kept up to date on every record (O(1) for the count window,
/// O(seconds elapsed) at most once per second for the time window).
#[derive(Debug)]
pub(super) enum Window {
    Count {
        /// One slot per call: bit 0 failed, bit 1 slow. Allocated once.
        slots: Box<[u8]>,
        /// How many slots hold a call (< len until the ring has wrapped once).
        filled: usize,
        next: usize,
        totals: Totals,
    },
    Time {
        /// One bucket per second; bucket `s % len` holds second `s` (counted from `origin`).
        buckets: Box<[Totals]>,
        origin: Instant,
        /// The most recent second recorded into; buckets older than `head - len` are empty.
        head: u64,
        totals: Totals,
    },
}

impl Window {
    pub(super) fn new(kind: SlidingWindow, now: Instant) -> Self {
        match kind {
            SlidingWindow::Calls(n) => Window::Count {
                slots: vec![0; n as usize].into_boxed_slice(),
                filled: 0,
                next: 0,
                totals: Totals::default(),
            },
            SlidingWindow::Seconds(n) => Window::Time {
                buckets: vec![Totals::default(); n as usize].into_boxed_slice(),
                origin: now,
                head: 0,
                totals: Totals::default(),
            },
        }
    }

    pub(super) fn record(&mut self, now: Instant, failed: bool, slow: bool) {
        self.advance(now);
        let call = Totals::one(failed, slow);
        match self {
            Window::Count {
                slots,
                filled,
                next,
                totals,
            } => {
                if *filled == slots.len() {
                    let old = slots[*next];
                    totals.sub(Totals::one(old & 1 != 0, old & 2 != 0));
                } else {
                    *filled += 1;
                }
                slots[*next] = u8::from(failed) | (u8::from(slow) << 1);
                *next = (*next + 1) % slots.len();
                totals.add(call);
            }
            Window::Time {
                buckets,
                head,
                totals,
                ..
            } => {
                let len = buckets.len() as u64;
                buckets[(*head % len) as usize].add(call);
                totals.add(call);
            }
        }
    }

    /// Moves a time window forward to `now`, emptying the buckets that fell out of it; returns
    /// the current second.
    fn advance(&mut self, now: Instant) -> u64 {
        let Window::Time {
            buckets,
            origin,
            head,
            totals,
        } = self
        else {
            return 0;
        };
        let second = now.saturating_duration_since(*origin).as_secs();
        if second > *head {
            let len = buckets.len() as u64;
            // Only the buckets of the seconds in (head, second] are reused; at most `len` of them.
            let from = (*head + 1).max(second.saturating_sub(len - 1));
            for s in from..=second {
                let bucket = &mut buckets[(s % len) as usize];
                totals.sub(*bucket);
                *bucket = Totals::default();
            }
            *head = second;
        }
        *head
    }

    /// Totals over the window as of `now`.
    pub(super) fn totals(&mut self, now: Instant) -> Totals {
        self.advance(now);
        match self {
            Window::Count { totals, .. } | Window::Time { totals, .. } => *totals,
        }
    }

    /// Forgets every call (when the breaker closes after half-open, the old outcomes describe the
    /// outage that is over).
    pub(super) fn clear(&mut self, now: Instant) {
        match self {
            Window::Count {
                slots,
                filled,
                next,
                totals,
            } => {
                slots.fill(0);
                *filled = 0;
                *next = 0;
                *totals = Totals::default();
            }
            Window::Time {
                buckets,
                origin,
                head,
                totals,
            } => {
                buckets.fill(Totals::default());
                *origin = now;
                *head = 0;
                *totals = Totals::default();
            }
        }
    }
}
