//! The state machine, without locks, clocks or I/O: every method takes `now`.

use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;

use super::config::{BreakerConfig, TripRule};
use super::window::Window;

/// The state of a circuit breaker, as reported to observers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are refused until the open period ends.
    Open,
    /// A limited number of probe calls is let through to test the service.
    HalfOpen,
}

impl BreakerState {
    /// `"closed"`, `"open"` or `"half_open"`: a stable metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// What a finished call says about the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Counted: whether it failed, whether it was slow.
    Counted { failed: bool, slow: bool },
    /// Says nothing about the service's health (cancelled, or overloaded when those are not
    /// counted): a probe slot is given back, nothing is recorded.
    Ignored,
}

/// Identifies the state an admitted call belongs to; outcomes of calls admitted in an earlier state
/// are ignored (a slow call admitted while closed must not decide a half-open round).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Ticket {
    generation: u64,
    probe: bool,
}

/// Why a call was refused: `Some(instant)` the open period ends then; `None` every half-open probe
/// slot is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) until: Option<Instant>,
}

/// A state change, for events and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Transition {
    pub(super) from: BreakerState,
    pub(super) to: BreakerState,
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, good: u32, bad: u32 },
}

#[derive(Debug)]
pub(super) struct Core {
    phase: Phase,
    generation: u64,
    window: Window,
    consecutive_failures: u32,
    /// Consecutive re-opens from half-open, for the open-duration growth; reset on close.
    reopens: u32,
    rng: fastrand::Rng,
    /// Tasks waiting (gate mode) for a half-open probe slot; woken on any change.
    waiters: Vec<Waker>,
    trip: TripRule,
    open_duration: Duration,
    open_backoff: f64,
    max_open_duration: Duration,
    jitter: f64,
    probes: u32,
    /// Bad probes that reopen the breaker; `probes - reopen_after + 1` good ones close it, so a
    /// decision is always made by the time every probe has reported.
    reopen_after: u32,
}

impl Core {
    /// `config` must have been validated.
    pub(super) fn new(config: &BreakerConfig, now: Instant) -> Self {
        let probes = config.half_open_probes;
        let (window, reopen_after) = match config.trip {
            TripRule::Rate {
                window,
                failure_rate,
                ..
            } => {
                // The same failure rate that trips a closed breaker reopens a half-open one.
                let bad = (failure_rate * f64::from(probes)).ceil() as u32;
                (window, bad.clamp(1, probes))
            }
            // Consecutive mode: one failed probe is one failure too many.
            TripRule::ConsecutiveFailures(_) => (super::config::SlidingWindow::Calls(1), 1),
        };
        Self {
            phase: Phase::Closed,
            generation: 0,
            window: Window::new(window, now),
            consecutive_failures: 0,
            reopens: 0,
            rng: config
                .seed
                .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            waiters: Vec::new(),
            trip: config.trip,
            open_duration: config.open_duration,
            open_backoff: config.open_backoff,
            max_open_duration: config.max_open_duration,
            jitter: config.jitter,
            probes,
            reopen_after,
        }
    }

    pub(super) fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Moves an expired open breaker to half-open.
    pub(super) fn tick(&mut self, now: Instant) -> Option<Transition> {
        match self.phase {
            Phase::Open { until } if now >= until => Some(self.enter(
                Phase::HalfOpen {
                    in_flight: 0,
                    good: 0,
                    bad: 0,
                },
                now,
            )),
            _ => None,
        }
    }

    /// Admits a call or says why not; with `waker`, a refused half-open caller is woken when a
    /// probe slot may be free.
    ///
    /// `now` is called only when the breaker is open (to see whether its open time is over): a
    /// closed breaker admits without reading the clock.
    pub(super) fn admit(
        &mut self,
        now: impl FnOnce() -> Instant,
        waker: Option<&Waker>,
    ) -> (Result<Ticket, Refusal>, Option<Transition>) {
        let transition = match self.phase {
            Phase::Open { .. } => self.tick(now()),
            _ => None,
        };
        let generation = self.generation;
        let admission = match &mut self.phase {
            Phase::Closed => Ok(Ticket {
                generation,
                probe: false,
            }),
            Phase::Open { until } => Err(Refusal {
                until: Some(*until),
            }),
            Phase::HalfOpen {
                in_flight,
                good,
                bad,
            } => {
                if *in_flight + *good + *bad < self.probes {
                    *in_flight += 1;
                    Ok(Ticket {
                        generation,
                        probe: true,
                    })
                } else {
                    if let Some(waker) = waker
                        && !self.waiters.iter().any(|w| w.will_wake(waker))
                    {
                        self.waiters.push(waker.clone());
                    }
                    Err(Refusal { until: None })
                }
            }
        };
        (admission, transition)
    }

    /// Records the outcome of an admitted call.
    pub(super) fn record(
        &mut self,
        now: Instant,
        ticket: Ticket,
        verdict: Verdict,
    ) -> Option<Transition> {
        if ticket.generation != self.generation {
            return None;
        }
        match (&mut self.phase, verdict) {
            (Phase::Closed, Verdict::Ignored) => None,
            (Phase::Closed, Verdict::Counted { failed, slow }) => {
                self.record_closed(now, failed, slow)
            }
            (Phase::HalfOpen { in_flight, .. }, Verdict::Ignored) => {
                *in_flight -= 1;
                self.wake_waiters();
                None
            }
            (
                Phase::HalfOpen {
                    in_flight,
                    good,
                    bad,
                },
                Verdict::Counted { failed, slow },
            ) => {
                *in_flight -= 1;
                if failed || slow {
                    *bad += 1;
                } else {
                    *good += 1;
                }
                if *bad >= self.reopen_after {
                    self.reopens = self.reopens.saturating_add(1);
                    Some(self.open(now))
                } else if *good > self.probes - self.reopen_after {
                    self.window.clear(now);
                    self.consecutive_failures = 0;
                    self.reopens = 0;
                    Some(self.enter(Phase::Closed, now))
                } else {
                    self.wake_waiters();
                    None
                }
            }
            // Open: only calls of an older generation exist, filtered above.
            (Phase::Open { .. }, _) => None,
        }
    }

    fn record_closed(&mut self, now: Instant, failed: bool, slow: bool) -> Option<Transition> {
        let trip = match self.trip {
            TripRule::ConsecutiveFailures(limit) => {
                self.consecutive_failures = if failed {
                    self.consecutive_failures + 1
                } else {
                    0
                };
                self.consecutive_failures >= limit
            }
            TripRule::Rate {
                minimum_calls,
                failure_rate,
                slow_call_rate,
                ..
            } => {
                self.window.record(now, failed, slow);
                let totals = self.window.totals(now);
                let calls = f64::from(totals.calls);
                totals.calls >= minimum_calls
                    && (f64::from(totals.failures) >= failure_rate * calls
                        || f64::from(totals.slow) >= slow_call_rate * calls)
            }
        };
        trip.then(|| self.open(now))
    }

    fn open(&mut self, now: Instant) -> Transition {
        let growth = self.open_backoff.powi(self.reopens.min(64) as i32);
        let full = self
            .open_duration
            .mul_f64(growth.min(1e6))
            .min(self.max_open_duration);
        let shortened = full.mul_f64(1.0 - self.jitter * self.rng.f64());
        self.enter(
            Phase::Open {
                until: now + shortened,
            },
            now,
        )
    }

    fn enter(&mut self, phase: Phase, _now: Instant) -> Transition {
        let from = self.state();
        self.phase = phase;
        self.generation += 1;
        self.wake_waiters();
        Transition {
            from,
            to: self.state(),
        }
    }

    fn wake_waiters(&mut self) {
        for waker in self.waiters.drain(..) {
            waker.wake();
        }
    }
}
