//! Reconnect delays: exponential with jitter, so a fleet that lost its control plane does not
//! reconnect in lockstep when it comes back.
//!
//! The shape is gRPC's connection backoff: `min(base × 1.6^n, max) × U(0.8, 1.2)`.

use std::time::Duration;

/// The growth factor per failed attempt (gRPC's connection-backoff multiplier).
const MULTIPLIER: f64 = 1.6;
/// The jitter, as a fraction of the delay either way (gRPC's ±20 %).
const JITTER: f64 = 0.2;

#[derive(Debug)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    attempt: i32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration, seed: Option<u64>) -> Self {
        let rng = seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        Self {
            base,
            max,
            attempt: 0,
            rng,
        }
    }

    /// The delay before the next attempt; each call grows the next one.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let grown = self.base.as_secs_f64() * MULTIPLIER.powi(self.attempt);
        let capped = grown.min(self.max.as_secs_f64());
        // Stop growing the exponent once capped, so it never overflows.
        if grown < self.max.as_secs_f64() {
            self.attempt += 1;
        }
        let jitter = 1.0 - JITTER + 2.0 * JITTER * self.rng.f64();
        Duration::from_secs_f64(capped * jitter)
    }

    /// Back to the base delay (a stream delivered a response).
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Paces repeated NACKs of one type URL.
///
/// A control plane that answers every request at once (go-control-plane's snapshot cache does,
/// when the request's version differs from its snapshot's, which a NACK's always does) would
/// otherwise trade NACKs with us as fast as the network allows while a bad resource stays in its
/// snapshot. The first NACK after an accepted response goes out at once; each further one in a
/// row waits one step of the backoff. An accepted response resets the pace.
#[derive(Debug)]
pub(crate) struct NackPacer {
    backoff: Backoff,
    in_a_row: bool,
}

impl NackPacer {
    pub(crate) fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            in_a_row: false,
        }
    }

    /// How long to hold this NACK back: `None` for the first of a row.
    pub(crate) fn on_nack(&mut self) -> Option<Duration> {
        if self.in_a_row {
            Some(self.backoff.next_delay())
        } else {
            self.in_a_row = true;
            None
        }
    }

    /// A response was accepted: the next NACK goes out at once again.
    pub(crate) fn on_ack(&mut self) {
        self.in_a_row = false;
        self.backoff.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_nacks_are_held_back_more_and_more_until_an_ack() {
        let base = Duration::from_millis(100);
        let mut pacer = NackPacer::new(Backoff::new(base, Duration::from_secs(10), Some(1)));
        assert_eq!(pacer.on_nack(), None, "the first NACK goes out at once");
        let first = pacer.on_nack().expect("the second waits");
        assert!(first >= base.mul_f64(0.8));
        let later = (0..5).filter_map(|_| pacer.on_nack()).last().unwrap();
        assert!(later > first * 3, "{later:?} grows from {first:?}");
        pacer.on_ack();
        assert_eq!(pacer.on_nack(), None);
    }

    #[test]
    fn grows_by_the_multiplier_within_jitter_caps_and_resets() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let mut backoff = Backoff::new(base, max, Some(3));
        let mut nominal = 0.1_f64;
        for _ in 0..10 {
            let delay = backoff.next_delay().as_secs_f64();
            let expected = nominal.min(1.0);
            assert!(
                delay >= expected * 0.8 - 1e-9 && delay <= expected * 1.2 + 1e-9,
                "{delay} vs {expected}"
            );
            nominal *= MULTIPLIER;
        }
        backoff.reset();
        assert!(backoff.next_delay() <= base.mul_f64(1.2));
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let delays = |seed| {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(120), Some(seed));
            (0..5).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(delays(9), delays(9));
        assert_ne!(delays(9), delays(10));
    }
}
