//! Per-endpoint traffic statistics for the examples' live tables: counts by outcome and latency
//! percentiles, per reporting interval and for the whole run.

use std::sync::Mutex;
use std::time::Duration;

/// How one request ended, as the live table counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The classifier said success.
    Success,
    /// The endpoint answered with a failure status (5xx, gRPC error).
    Failure,
    /// The endpoint said it is overloaded (429, 503 with `Retry-After`).
    Overloaded,
    /// No response at all: the client returned an error.
    Error,
}

/// Counts and latencies for one interval or one whole run.
#[derive(Clone, Debug, Default)]
pub struct Window {
    /// Requests that ended as [`Outcome::Success`].
    pub success: u64,
    /// Requests that ended as [`Outcome::Failure`].
    pub failure: u64,
    /// Requests that ended as [`Outcome::Overloaded`].
    pub overloaded: u64,
    /// Requests that ended as [`Outcome::Error`].
    pub error: u64,
    latencies_us: Vec<u32>,
}

impl Window {
    /// Records one request.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Success => self.success += 1,
            Outcome::Failure => self.failure += 1,
            Outcome::Overloaded => self.overloaded += 1,
            Outcome::Error => self.error += 1,
        }
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us.push(us);
    }

    /// All requests recorded.
    pub fn total(&self) -> u64 {
        self.success + self.failure + self.overloaded + self.error
    }

    /// The latency at quantile `q` (0.0 to 1.0), nearest-rank, or `None` with no requests.
    pub fn quantile(&mut self, q: f64) -> Option<Duration> {
        if self.latencies_us.is_empty() {
            return None;
        }
        self.latencies_us.sort_unstable();
        let n = self.latencies_us.len();
        // Nearest-rank: the smallest value with at least q·n values at or below it.
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n);
        Some(Duration::from_micros(u64::from(
            self.latencies_us[rank - 1],
        )))
    }

    /// Adds another window's counts and latencies to this one.
    pub fn merge(&mut self, other: &Window) {
        self.success += other.success;
        self.failure += other.failure;
        self.overloaded += other.overloaded;
        self.error += other.error;
        self.latencies_us.extend_from_slice(&other.latencies_us);
    }
}

/// Statistics of one endpoint, shared between the tasks sending requests and the printer.
#[derive(Debug, Default)]
pub struct EndpointStats {
    current: Mutex<Window>,
    total: Mutex<Window>,
}

impl EndpointStats {
    /// Records one request in the current interval.
    pub fn record(&self, outcome: Outcome, latency: Duration) {
        lock(&self.current).record(outcome, latency);
    }

    /// Ends the current interval: returns it and adds it to the run's totals.
    pub fn rotate(&self) -> Window {
        let window = std::mem::take(&mut *lock(&self.current));
        lock(&self.total).merge(&window);
        window
    }

    /// The run's totals so far (intervals already rotated).
    pub fn total(&self) -> Window {
        lock(&self.total).clone()
    }
}

fn lock(m: &Mutex<Window>) -> std::sync::MutexGuard<'_, Window> {
    // A panic while holding the lock leaves only counters behind; they are still worth printing.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Formats an optional latency in milliseconds with one decimal, or `-`.
pub fn fmt_ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.1}", d.as_secs_f64() * 1e3),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut w = Window::default();
        assert_eq!(w.quantile(0.5), None);
        for ms in 1..=100 {
            w.record(Outcome::Success, Duration::from_millis(ms));
        }
        assert_eq!(w.quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(w.quantile(0.99), Some(Duration::from_millis(99)));
        assert_eq!(w.quantile(1.0), Some(Duration::from_millis(100)));
        assert_eq!(w.quantile(0.0), Some(Duration::from_millis(1)));
    }

    #[test]
    fn rotate_moves_interval_into_totals() {
        let s = EndpointStats::default();
        s.record(Outcome::Success, Duration::from_millis(1));
        s.record(Outcome::Failure, Duration::from_millis(2));
        let w = s.rotate();
        assert_eq!((w.success, w.failure, w.total()), (1, 1, 2));
        s.record(Outcome::Error, Duration::from_millis(3));
        assert_eq!(s.rotate().error, 1);
        let t = s.total();
        assert_eq!((t.success, t.failure, t.error, t.total()), (1, 1, 1, 3));
        assert_eq!(fmt_ms(Some(Duration::from_micros(1560))), "1.6");
    }
}
