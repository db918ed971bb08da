//! The peak-sensitive moving average of round-trip times.

use std::time::Duration;

use tokio::time::Instant;

/// An RTT estimate in nanoseconds and the time it was last updated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RttEstimate {
    nanos: f64,
    updated: Instant,
    /// Whether any sample was recorded: until then the estimate is only the configured start
    /// value, which a reconfiguration may replace (see [`reseed`](Self::reseed)).
    sampled: bool,
}

/// `exp(-elapsed / decay)`: the weight the old estimate keeps after `elapsed`.
fn retained(elapsed: Duration, decay: Duration) -> f64 {
    let decay = decay.as_secs_f64().max(f64::MIN_POSITIVE);
    (-elapsed.as_secs_f64() / decay).exp()
}

impl RttEstimate {
    pub(crate) fn new(initial: Duration, now: Instant) -> Self {
        Self {
            nanos: initial.as_secs_f64() * 1e9,
            updated: now,
            sampled: false,
        }
    }

    /// Starts an estimate that has no sample yet over from `initial` at `now`; one built from
    /// samples is kept (they are measurements, whichever strategy was in force when they were
    /// taken). Returns whether it was reseeded.
    pub(crate) fn reseed(&mut self, initial: Duration, now: Instant) -> bool {
        if self.sampled {
            return false;
        }
        *self = Self::new(initial, now);
        true
    }

    /// The estimate as seen at `now`: decayed toward zero since the last sample, so an endpoint
    /// nobody has tried for a while looks cheaper and gets a new sample (Finagle reads it so too).
    pub(crate) fn at(&self, now: Instant, decay: Duration) -> f64 {
        self.nanos * retained(now.saturating_duration_since(self.updated), decay)
    }

    /// Adds a sample: a peak replaces the estimate at once; a lower sample is averaged in with
    /// weight `1 − exp(-elapsed / decay)`, elapsed being the time since the previous sample.
    pub(crate) fn record(&mut self, rtt: Duration, now: Instant, decay: Duration) {
        let sample = rtt.as_secs_f64() * 1e9;
        if sample > self.nanos {
            self.nanos = sample;
        } else {
            let keep = retained(now.saturating_duration_since(self.updated), decay);
            self.nanos = self.nanos * keep + sample * (1.0 - keep);
        }
        self.updated = now;
        self.sampled = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_replace_and_lows_decay() {
        let t0 = Instant::now();
        let decay = Duration::from_secs(10);
        let mut est = RttEstimate::new(Duration::from_millis(30), t0);
        est.record(Duration::from_millis(300), t0, decay);
        assert_eq!(est.at(t0, decay), 300e6);
        // A low sample 10 s later keeps e^-1 of the old estimate.
        let t1 = t0 + decay;
        est.record(Duration::from_millis(10), t1, decay);
        let expected = 300e6 * (-1f64).exp() + 10e6 * (1.0 - (-1f64).exp());
        assert!((est.at(t1, decay) - expected).abs() < 1.0);
        // Idle time decays the view toward zero.
        assert!(est.at(t1 + decay, decay) < expected * 0.4);
    }

    #[test]
    fn reseed_replaces_only_an_unsampled_estimate() {
        let t0 = Instant::now();
        let decay = Duration::from_secs(10);
        let mut fresh = RttEstimate::new(Duration::ZERO, t0);
        assert!(fresh.reseed(Duration::from_millis(30), t0));
        assert_eq!(fresh.at(t0, decay), 30e6);
        let mut measured = RttEstimate::new(Duration::ZERO, t0);
        measured.record(Duration::from_millis(5), t0, decay);
        assert!(!measured.reseed(Duration::from_millis(30), t0));
        assert_eq!(measured.at(t0, decay), 5e6);
    }
}
