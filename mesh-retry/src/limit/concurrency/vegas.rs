//! [`Vegas`]: the adaptive limit algorithm, on its own so it can be simulated.

use mesh_core::time::deadline_after;
use std::time::Duration;

use tokio::time::Instant;

/// Parameters of the [`Vegas`] adaptive concurrency limit.
///
/// TCP Vegas (Brakmo & Peterson, 1994) applied to requests: with `rtt_min` the lowest latency seen
/// (the service with nothing queued) and `rtt` a sample, `limit × (1 − rtt_min / rtt)` estimates how
/// many of the `limit` requests in flight are waiting in a queue rather than being served. The limit
/// grows while that queue is small (below `alpha`) and shrinks when it is large (above `beta`), so
/// it settles a few requests past the point where latency starts to rise — the knee of the
/// latency curve.
///
/// Why Vegas and not Gradient2 (Netflix's default): Gradient2 compares the latency with its own
/// long-window *average* (600 samples), which follows the latency the limit itself causes, so under
/// sustained moderate overload the limit creeps upward (a known complaint among its users).
/// Vegas compares with the *minimum*, which queueing cannot raise.
///
/// **Measuring the minimum** (Envoy's adaptive-concurrency approach): the minimum is only
/// trustworthy when measured with nothing queued, so the limit first drops to `min_limit` until
/// `probe_samples` requests that ran with at most `min_limit` in flight have finished; their
/// lowest latency becomes the baseline and the limit returns to where it was. This happens at the
/// start and again every `probe_interval`, so that a service that became slower for good is not
/// read as permanently queued. (Re-measuring at full load instead, as Netflix's Vegas does,
/// reads queueing as the baseline and lets the limit creep upward.) Probes are not jittered.
///
/// | key | default | why |
/// |-----|---------|-----|
/// | `initial_limit` | 20 | Netflix's initial limit for both Vegas and Gradient2; used once the first probe is done |
/// | `min_limit` | 3 | Envoy's adaptive-concurrency minimum concurrency, also used while probing |
/// | `max_limit` | 1000 | Netflix Vegas's maximum; bounds the damage of a wrong latency reading |
/// | `alpha` | 3 | grow while fewer than `3 × log10(limit)` requests queue (Netflix Vegas) |
/// | `beta` | 6 | shrink when more than `6 × log10(limit)` queue (Netflix Vegas) |
/// | `probe_interval` | 60 s | Envoy's `min_rtt_calc_interval`: each probe sheds load briefly, so rarely |
/// | `probe_samples` | 50 | Envoy's `request_count` for a minimum-latency measurement |
///
/// Growth and decrease steps are `log10(limit)` requests (at least 1), Netflix's functions: fast
/// when the limit is small, gentle when it is large. As in TCP Vegas, the limit moves at most once
/// per round trip: only requests that started after the last change are judged against it.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct VegasConfig {
    /// The limit after the first minimum-latency measurement (during it, `min_limit`).
    pub(crate) initial_limit: u32,
    /// The limit never goes below this.
    pub(crate) min_limit: u32,
    /// The limit never goes above this.
    pub(crate) max_limit: u32,
    /// Queue-size factor below which the limit grows.
    pub(crate) alpha: f64,
    /// Queue-size factor above which the limit shrinks.
    pub(crate) beta: f64,
    /// How often the minimum latency is re-measured.
    pub(crate) probe_interval: Duration,
    /// Requests measured (at `min_limit` in flight) per minimum-latency measurement.
    pub(crate) probe_samples: u32,
}

impl Default for VegasConfig {
    fn default() -> Self {
        Self {
            initial_limit: 20,
            min_limit: 3,
            max_limit: 1000,
            alpha: 3.0,
            beta: 6.0,
            probe_interval: Duration::from_secs(60),
            probe_samples: 50,
        }
    }
}

impl VegasConfig {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// Bounds and starting point of the limit.
    #[must_use]
    pub fn limits(mut self, initial: u32, min: u32, max: u32) -> Self {
        self.initial_limit = initial;
        self.min_limit = min;
        self.max_limit = max;
        self
    }

    /// Queue-size factors (grow below `alpha × log10(limit)`, shrink above `beta × log10(limit)`).
    #[must_use]
    pub fn thresholds(mut self, alpha: f64, beta: f64) -> Self {
        self.alpha = alpha;
        self.beta = beta;
        self
    }

    /// How often the minimum latency is re-measured.
    #[must_use]
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// Requests measured (at `min_limit` in flight) per minimum-latency measurement.
    #[must_use]
    pub fn probe_samples(mut self, samples: u32) -> Self {
        self.probe_samples = samples;
        self
    }

    /// The limit after the first minimum-latency measurement.
    pub fn get_initial_limit(&self) -> u32 {
        self.initial_limit
    }

    /// The lowest limit.
    pub fn get_min_limit(&self) -> u32 {
        self.min_limit
    }

    /// The highest limit.
    pub fn get_max_limit(&self) -> u32 {
        self.max_limit
    }

    /// The queue-size factors `(alpha, beta)`.
    pub fn get_thresholds(&self) -> (f64, f64) {
        (self.alpha, self.beta)
    }

    /// How often the minimum latency is re-measured.
    pub fn get_probe_interval(&self) -> Duration {
        self.probe_interval
    }

    /// Requests per minimum-latency measurement.
    pub fn get_probe_samples(&self) -> u32 {
        self.probe_samples
    }

    pub(super) fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.min_limit == 0 {
            return Err(("vegas.min_limit", "must be at least 1"));
        }
        if self.max_limit < self.min_limit {
            return Err(("vegas.max_limit", "must be at least min_limit"));
        }
        if !(self.min_limit..=self.max_limit).contains(&self.initial_limit) {
            return Err((
                "vegas.initial_limit",
                "must be within [min_limit, max_limit]",
            ));
        }
        if !(self.alpha > 0.0 && self.beta > self.alpha && self.beta.is_finite()) {
            return Err(("vegas.beta", "need 0 < alpha < beta, both finite"));
        }
        if self.probe_interval.is_zero() {
            return Err(("vegas.probe_interval", "must be positive"));
        }
        if self.probe_samples == 0 {
            return Err(("vegas.probe_samples", "must be at least 1"));
        }
        Ok(())
    }
}

/// The Vegas adaptive limit: feed it one sample per completed request, read the limit.
///
/// Deterministic, and driven only by what it is given (latencies, in-flight counts, instants), so
/// a simulation can drive it.
#[derive(Clone, Debug)]
pub struct Vegas {
    config: VegasConfig,
    /// Kept fractional so that small steps accumulate.
    limit: f64,
    rtt_min: Option<Duration>,
    phase: Phase,
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Measuring the minimum at `min_limit`; the limit to return to afterwards.
    Probing {
        restore: f64,
        remaining: u32,
        lowest: Option<Duration>,
    },
    /// Adapting, until the next probe is due. `changed` is when the limit last moved.
    Adapting {
        next_probe: Instant,
        changed: Instant,
    },
}

impl Vegas {
    /// A limit that starts by measuring the minimum latency, then continues from
    /// `config.initial_limit`.
    ///
    /// # Panics
    ///
    /// If `config` is invalid (the layer validates it first and returns an error instead).
    pub fn new(config: VegasConfig) -> Self {
        if let Err((key, reason)) = config.validate() {
            panic!("invalid Vegas config `{key}`: {reason}");
        }
        Self {
            config,
            limit: f64::from(config.min_limit),
            rtt_min: None,
            phase: Phase::Probing {
                restore: f64::from(config.initial_limit),
                remaining: config.probe_samples,
                lowest: None,
            },
        }
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.limit as u32
    }

    /// The baseline latency: the lowest measured by the last probe (or seen since).
    pub fn rtt_min(&self) -> Option<Duration> {
        self.rtt_min
    }

    /// Whether the minimum latency is being measured (the limit is held at `min_limit`).
    pub fn is_probing(&self) -> bool {
        matches!(self.phase, Phase::Probing { .. })
    }

    /// Learns from one request that took `rtt` and started with `in_flight` requests in flight
    /// (itself included), finishing at `now`; returns the new limit.
    pub fn sample(&mut self, rtt: Duration, in_flight: u32, now: Instant) -> u32 {
        if rtt.is_zero() {
            return self.limit();
        }
        match &mut self.phase {
            Phase::Probing {
                restore,
                remaining,
                lowest,
            } => {
                // Requests admitted before the probe started ran queued: not a baseline.
                if in_flight <= self.config.min_limit {
                    *lowest = Some(lowest.map_or(rtt, |low| low.min(rtt)));
                    *remaining -= 1;
                    if *remaining == 0 {
                        self.rtt_min = *lowest;
                        self.limit = *restore;
                        self.phase = Phase::Adapting {
                            next_probe: deadline_after(now, self.config.probe_interval),
                            changed: now,
                        };
                    }
                }
                return self.limit();
            }
            Phase::Adapting { next_probe, .. } if now >= *next_probe => {
                self.phase = Phase::Probing {
                    restore: self.limit,
                    remaining: self.config.probe_samples,
                    lowest: None,
                };
                self.limit = f64::from(self.config.min_limit);
                return self.limit();
            }
            Phase::Adapting { .. } => {}
        }
        let rtt_min = match self.rtt_min {
            Some(min) if rtt >= min => min,
            _ => {
                self.rtt_min = Some(rtt);
                return self.limit();
            }
        };
        // Like TCP Vegas, adjust once per round trip: only a request that started after the last
        // change saw the current limit. Without this, the samples of requests already in flight
        // keep pushing in the same direction and the limit overshoots by a whole window.
        let Phase::Adapting { changed, .. } = &mut self.phase else {
            return self.limit();
        };
        if now
            .checked_sub(rtt)
            .is_none_or(|started| started < *changed)
        {
            return self.limit();
        }
        let limit = self.limit;
        let step = limit.log10().max(1.0);
        let queue = limit * (1.0 - rtt_min.as_secs_f64() / rtt.as_secs_f64());
        let new = if queue > self.config.beta * step {
            limit - step
        } else if queue <= self.config.alpha * step {
            // Grow only when the limit is actually used: an idle service says nothing about how
            // much more it could take.
            if f64::from(in_flight) * 2.0 >= limit {
                limit + step
            } else {
                limit
            }
        } else {
            limit
        };
        let new = new.clamp(
            f64::from(self.config.min_limit),
            f64::from(self.config.max_limit),
        );
        if new != limit {
            self.limit = new;
            *changed = now;
        }
        self.limit()
    }
}
