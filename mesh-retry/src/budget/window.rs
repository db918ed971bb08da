//! The sliding-window retry budget (ratio of requests plus a minimum rate).

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
/// so the budget follows a paused test clock. The counters sit behind one short mutex.
#[derive(Clone, Debug)]
pub struct WindowBudget {
    shared: Arc<Mutex<Window>>,
}

#[derive(Debug)]
struct Window {
    /// `(requests, retries)` per slot; slot `i` of the ring holds absolute slot index `i mod n`.
    slots: Vec<(u64, u64)>,
    slot_nanos: u64,
    /// Absolute index (since `start`) of the current slot.
    head: u64,
    start: Instant,
    requests: u64,
    retries: u64,
    ratio_scaled: u64,
    reserve_scaled: u64,
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
        Ok(Self {
            shared: Arc::new(Mutex::new(Window {
                slots: vec![(0, 0); config.slots as usize],
                slot_nanos,
                head: 0,
                start: Instant::now(),
                requests: 0,
                retries: 0,
                // In range, so the cast cannot saturate.
                ratio_scaled: (config.ratio * RATIO_SCALE as f64).round() as u64,
                reserve_scaled,
            })),
        })
    }

    fn window(&self) -> MutexGuard<'_, Window> {
        // The counters stay consistent even if a holder panicked: every update is one step.
        let mut window = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        window.advance(Instant::now());
        window
    }

    /// Requests counted in the current window.
    pub fn requests(&self) -> u64 {
        self.window().requests
    }

    /// Retries counted in the current window.
    pub fn retries(&self) -> u64 {
        self.window().retries
    }
}

impl Window {
    fn advance(&mut self, now: Instant) {
        // u64 arithmetic on purpose: a u128 division costs more than the rest of a deposit.
        let elapsed = now.saturating_duration_since(self.start);
        let elapsed = elapsed
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(elapsed.subsec_nanos()));
        let index = elapsed / self.slot_nanos;
        if index <= self.head {
            return;
        }
        let len = self.slots.len() as u64;
        let steps = (index - self.head).min(len);
        for step in 1..=steps {
            let slot = &mut self.slots[((self.head + step) % len) as usize];
            self.requests -= slot.0;
            self.retries -= slot.1;
            *slot = (0, 0);
        }
        self.head = index;
    }

    fn current(&mut self) -> &mut (u64, u64) {
        let len = self.slots.len() as u64;
        &mut self.slots[(self.head % len) as usize]
    }
}

impl RetryBudget for WindowBudget {
    fn deposit(&self) {
        let mut window = self.window();
        window.requests += 1;
        window.current().0 += 1;
    }

    fn withdraw(&self) -> bool {
        let mut window = self.window();
        let wanted = (window.retries + 1).saturating_mul(RATIO_SCALE);
        let allowed = window
            .requests
            .saturating_mul(window.ratio_scaled)
            .saturating_add(window.reserve_scaled);
        if wanted > allowed {
            return false;
        }
        window.retries += 1;
        window.current().1 += 1;
        true
    }
}
