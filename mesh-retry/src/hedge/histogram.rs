//! A rotating latency histogram, for percentile-based hedge delays.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// Buckets per doubling of latency: bucket bounds grow by 2^(1/4) ≈ 19 %.
const PER_DOUBLING: f64 = 4.0;
/// 128 buckets from 1 µs cover up to 2^32 µs (about 71 minutes); longer latencies share the last.
const BUCKETS: usize = 128;

/// Recent response latencies, to answer "what is the p-th percentile lately?".
///
/// Latencies fall into logarithmic buckets (four per doubling, so a percentile is known to within
/// about 19 %, rounded *up* to the bucket's bound). Two generations are kept: the current one and
/// the one before; every `window` the current one becomes the previous one and a fresh one starts,
/// so a percentile always reflects between one and two windows of history and old behaviour is
/// forgotten. Time is `tokio::time::Instant`.
///
/// `Clone` is cheap and clones share the counts (one short lock per record or query).
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    shared: Arc<Mutex<Generations>>,
}

#[derive(Debug)]
struct Generations {
    current: Vec<u64>,
    previous: Vec<u64>,
    current_total: u64,
    previous_total: u64,
    rotated_at: Instant,
    window: Duration,
}

impl LatencyHistogram {
    /// An empty histogram rotating every `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Generations {
                current: vec![0; BUCKETS],
                previous: vec![0; BUCKETS],
                current_total: 0,
                previous_total: 0,
                rotated_at: Instant::now(),
                window,
            })),
        }
    }

    fn generations(&self) -> MutexGuard<'_, Generations> {
        let mut generations = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        generations.rotate(Instant::now());
        generations
    }

    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        let mut generations = self.generations();
        generations.current[bucket(latency)] += 1;
        generations.current_total += 1;
    }

    /// Latencies counted (both generations).
    pub fn count(&self) -> u64 {
        let generations = self.generations();
        generations.current_total + generations.previous_total
    }

    /// The latency below which a fraction `p` (0 to 1) of the recorded latencies fall, rounded up
    /// to a bucket bound; `None` while fewer than `min_samples` latencies are known.
    pub fn percentile(&self, p: f64, min_samples: u64) -> Option<Duration> {
        let generations = self.generations();
        let total = generations.current_total + generations.previous_total;
        if total == 0 || total < min_samples {
            return None;
        }
        // The rank of the sample at the percentile, 1-based; p is clamped to [0, 1].
        let rank = ((p.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for index in 0..BUCKETS {
            seen += generations.current[index] + generations.previous[index];
            if seen >= rank {
                return Some(upper_bound(index));
            }
        }
        Some(upper_bound(BUCKETS - 1))
    }
}

impl Generations {
    fn rotate(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.rotated_at);
        if elapsed < self.window {
            return;
        }
        if elapsed >= self.window.saturating_mul(2) {
            // Both generations are too old.
            self.previous.fill(0);
            self.previous_total = 0;
        } else {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.previous_total = self.current_total;
        }
        self.current.fill(0);
        self.current_total = 0;
        self.rotated_at = now;
    }
}

fn bucket(latency: Duration) -> usize {
    let micros = latency.as_micros().max(1) as f64;
    ((micros.log2() * PER_DOUBLING) as usize).min(BUCKETS - 1)
}

fn upper_bound(index: usize) -> Duration {
    let micros = 2f64.powf((index + 1) as f64 / PER_DOUBLING);
    Duration::from_micros(micros.ceil() as u64)
}
