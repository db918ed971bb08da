//! The sliding-window retry budget (ratio of requests plus a minimum rate).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use mesh_core::ConfigError;

use super::RetryBudget;

/// Ratios are kept as an integer count of 1/`RATIO_SCALE`, so that every comparison is exact.
const RATIO_SCALE: u64 = 10_000;

/// Settings of a [`WindowBudget`].
///
/// | Setting       | Default | Why                                                             |
/// |---------------|---------|-----------------------------------------------------------------|
/// | `ratio`       | 0.2     | Finagle and Linkerd: retries add at most 20 % load              |
/// | `min_per_sec` | 10      | Finagle and Linkerd: low-traffic clients can still retry        |
/// | `window`      | 10 s    | Finagle and Linkerd's TTL: long enough to smooth bursts          |
/// | `slots`       | 10      | one-second granularity for the default window                   |
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WindowBudgetConfig {
    ratio: f64,
    min_per_sec: u32,
    window: Duration,
    slots: u32,
}

impl Default for WindowBudgetConfig {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_sec: 10,
            window: Duration::from_secs(10),
            slots: 10,
        }
    }
}

impl WindowBudgetConfig {
    /// Retries may add `ratio` × the requests of the window. The value is rounded to four decimal
    /// places and then used exactly (0.1, 0.25, 0.6 and 0.9 are exact). Between 0 and 100.
    /// Checked by [`WindowBudget::new`].
    #[must_use]
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }

    /// Retries always allowed per second of window, whatever the request volume (0 disables).
    #[must_use]
    pub fn min_per_sec(mut self, min_per_sec: u32) -> Self {
        self.min_per_sec = min_per_sec;
        self
    }

    /// How far back requests and retries are remembered.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How many slots the window is cut into (its granularity).
    #[must_use]
    pub fn slots(mut self, slots: u32) -> Self {
        self.slots = slots;
        self
    }

    /// The ratio, as set.
    pub fn get_ratio(&self) -> f64 {
        self.ratio
    }

    /// The minimum retry rate, per second.
    pub fn get_min_per_sec(&self) -> u32 {
        self.min_per_sec
    }

    /// The window length.
    pub fn get_window(&self) -> Duration {
        self.window
    }

    /// The number of slots.
    pub fn get_slots(&self) -> u32 {
        self.slots
    }
}

/// Retries ≤ ratio × requests + min_per_sec × window, over a sliding window.
///
/// The window is a ring of `slots` counters, each covering `window / slots`; a request or retry
/// is counted in the slot of the current time, and a slot is forgotten once it is `slots` slots
/// old. So the counts cover between `window − window/slots` and `window` of history.
///
/// A retry is granted when, counting it, `retries × 10 000 ≤ requests × ratio × 10 000 +
/// min_per_sec × window_ms × 10`: every term is an integer, so fractional ratios never round in
/// the caller's favour (the tower issue 857 bug class).
///
/// `Clone` is cheap (an `Arc`) and clones share the counters. Time is `tokio::time::Instant`,
/// so the budget follows a paused test clock.
///
/// A [`deposit`](RetryBudget::deposit), made for every request, takes no lock: each slot's request
/// count is one atomic word that also names the slot it counts (the low 32 bits of the slot's
/// number since the budget was made), so a deposit adds to the current slot or starts it afresh in
/// one compare-and-swap, and the current slot is found without a division while time stays in it.
/// A [`withdraw`](RetryBudget::withdraw) sums the request counts of the slots in the window and
/// takes a short lock for the retry counts, so two retries never both take the last one: the bound
/// is exact. A request count saturates at 2³² − 1 per slot (counting fewer requests only allows
/// fewer retries). Slot numbers are compared by their low 32 bits, which is right while they are
/// less than 2³¹ slots apart: a slot nothing was counted in and nothing read for that long (68
/// years with the default one-second slots) could be taken for a current one.
#[derive(Clone, Debug)]
pub struct WindowBudget {
    shared: Arc<Shared>,
}

/// A slot's request word: the slot number's low 32 bits above, the count below.
const COUNT_MASK: u64 = u32::MAX as u64;

#[derive(Debug)]
struct Shared {
    /// Request counts, one packed word per slot; slot `i` of the ring holds slot number `i mod n`.
    requests: Box<[AtomicU64]>,
    /// The newest slot number a deposit or a withdraw has seen (deposits find it without dividing).
    newest: AtomicU64,
    slot_nanos: u64,
    start: Instant,
    ratio_scaled: u64,
    reserve_scaled: u64,
    retries: Mutex<Retries>,
}

/// The retry counts, changed only under the lock.
#[derive(Debug)]
struct Retries {
    /// Per slot; slot `i` of the ring holds slot number `i mod n`.
    slots: Vec<u64>,
    /// The slot number of the current slot.
    head: u64,
    total: u64,
}

impl Default for WindowBudget {
    fn default() -> Self {
        Self::new(WindowBudgetConfig::default()).expect("the default configuration is valid")
    }
}

impl WindowBudget {
    /// A budget with these settings; errors name the setting that is out of range.
    pub fn new(config: WindowBudgetConfig) -> Result<Self, ConfigError> {
        if !config.ratio.is_finite() || !(0.0..=100.0).contains(&config.ratio) {
            return Err(ConfigError::new(
                "ratio",
                "must be a number between 0 and 100",
            ));
        }
        if config.slots == 0 || config.slots > 1000 {
            return Err(ConfigError::new("slots", "must be between 1 and 1000"));
        }
        // u64 nanoseconds cover 584 years; a longer window is clamped to that.
        let window_nanos = u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX);
        let slot_nanos = window_nanos / u64::from(config.slots);
        if slot_nanos == 0 {
            return Err(ConfigError::new(
                "window",
                "must be longer than zero (and than one nanosecond per slot)",
            ));
        }
        let window_ms = u64::try_from(config.window.as_millis()).unwrap_or(u64::MAX);
        // min_per_sec × window_s × RATIO_SCALE, with window_s = window_ms / 1000.
        let reserve_scaled = u64::from(config.min_per_sec)
            .saturating_mul(window_ms)
            .saturating_mul(RATIO_SCALE / 1000);
        let slots = config.slots as usize;
        Ok(Self {
            shared: Arc::new(Shared {
                requests: (0..slots).map(|_| AtomicU64::new(0)).collect(),
                newest: AtomicU64::new(0),
                slot_nanos,
                start: Instant::now(),
                // In range, so the cast cannot saturate.
                ratio_scaled: (config.ratio * RATIO_SCALE as f64).round() as u64,
                reserve_scaled,
                retries: Mutex::new(Retries {
                    slots: vec![0; slots],
                    head: 0,
                    total: 0,
                }),
            }),
        })
    }

    /// Requests counted in the current window.
    pub fn requests(&self) -> u64 {
        let shared = &*self.shared;
        shared.requests_in_window(shared.slot_now())
    }

    /// Retries counted in the current window.
    pub fn retries(&self) -> u64 {
        let shared = &*self.shared;
        let now = shared.slot_now();
        let mut retries = shared.retries();
        retries.advance(shared.newest.load(Ordering::Relaxed).max(now));
        retries.total
    }
}

impl Shared {
    /// The slot number of the present time, noted as the newest seen.
    fn slot_now(&self) -> u64 {
        // u64 arithmetic on purpose: a u128 division costs more than the rest of a deposit.
        let elapsed = mesh_core::time::now().saturating_duration_since(self.start);
        let elapsed = elapsed
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(elapsed.subsec_nanos()));
        let newest = self.newest.load(Ordering::Relaxed);
        // Time is still in the newest slot (the usual case): no division.
        let newest_start = newest.saturating_mul(self.slot_nanos);
        if elapsed >= newest_start && elapsed - newest_start < self.slot_nanos {
            return newest;
        }
        let slot = elapsed / self.slot_nanos;
        if slot > newest {
            self.newest.fetch_max(slot, Ordering::Relaxed);
        }
        slot
    }

    /// Counts one request in slot number `slot`.
    fn count_request(&self, slot: u64) {
        let word = &self.requests[(slot % self.requests.len() as u64) as usize];
        // The slot number's low 32 bits: the truncation is the point.
        let tag = u64::from(slot as u32) << 32;
        let _ = word.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |value| {
            let counted = (value >> 32) as u32;
            if counted == slot as u32 {
                Some(value + u64::from(value & COUNT_MASK < COUNT_MASK))
            } else if is_later(counted, slot as u32) {
                // The word counts a slot one window or more after this one (this deposit read
                // the clock long before it got here): this request has left the window already.
                None
            } else {
                Some(tag | 1)
            }
        });
    }

    fn retries(&self) -> MutexGuard<'_, Retries> {
        // The counts stay consistent even if a holder panicked: every update is one step.
        self.retries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The requests of the window ending with slot `now` (or with the newest slot seen, if a
    /// deposit saw a later one). Words of slots out of the window are cleared on the way.
    fn requests_in_window(&self, now: u64) -> u64 {
        let newest = self.newest.load(Ordering::Relaxed).max(now) as u32;
        let len = self.requests.len() as u32;
        let mut sum = 0;
        for word in &self.requests {
            let value = word.load(Ordering::Relaxed);
            let age = newest.wrapping_sub((value >> 32) as u32);
            if age < len {
                sum += value & COUNT_MASK;
            } else if value & COUNT_MASK != 0 && !is_later((value >> 32) as u32, newest) {
                // A slot out of the window (not one a deposit that read a later clock has just
                // started): its count goes, its number stays, unless a deposit replaced it
                // meanwhile.
                let _ = word.compare_exchange(
                    value,
                    value & !COUNT_MASK,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
        sum
    }
}

/// Whether slot number `a` comes after `b`, both as their low 32 bits (serial-number order:
/// right while the two are less than 2³¹ slots apart).
fn is_later(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

impl Retries {
    fn advance(&mut self, slot: u64) {
        if slot <= self.head {
            return;
        }
        let len = self.slots.len() as u64;
        let steps = (slot - self.head).min(len);
        for step in 1..=steps {
            let count = &mut self.slots[((self.head + step) % len) as usize];
            self.total -= *count;
            *count = 0;
        }
        self.head = slot;
    }
}

impl RetryBudget for WindowBudget {
    fn deposit(&self) {
        let shared = &*self.shared;
        shared.count_request(shared.slot_now());
    }

    fn withdraw(&self) -> bool {
        let shared = &*self.shared;
        let now = shared.slot_now();
        let mut retries = shared.retries();
        let newest = shared.newest.load(Ordering::Relaxed).max(now);
        retries.advance(newest);
        let requests = shared.requests_in_window(newest);
        let wanted = (retries.total + 1).saturating_mul(RATIO_SCALE);
        let allowed = requests
            .saturating_mul(shared.ratio_scaled)
            .saturating_add(shared.reserve_scaled);
        if wanted > allowed {
            return false;
        }
        retries.total += 1;
        let len = retries.slots.len() as u64;
        let head = retries.head;
        retries.slots[(head % len) as usize] += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_late_deposit_never_overwrites_a_later_slot() {
        let config = WindowBudgetConfig::default().window(Duration::from_secs(10));
        let budget = WindowBudget::new(config).unwrap();
        let shared = &*budget.shared;
        // Slots 10 and 0 share a word: slot 10 is counted, then a deposit that read the clock
        // in slot 0 (a window earlier) arrives; it has left the window and changes nothing.
        shared.count_request(10);
        shared.count_request(10);
        shared.count_request(0);
        assert_eq!(shared.requests_in_window(10), 2);
        assert_eq!(shared.requests_in_window(19), 2);
        // One window later the word's count goes, and slot 20 starts afresh.
        assert_eq!(shared.requests_in_window(20), 0);
        shared.count_request(20);
        assert_eq!(shared.requests_in_window(20), 1);
    }
}
