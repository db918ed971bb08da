//! The shared limiter: in-flight count, current limit, waiting tasks; [`LimitPermit`].

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use mesh_core::ConfigError;
use tokio::time::Instant;

use super::config::{ConcurrencyConfig, LimitAlgorithm};
use super::vegas::Vegas;
use crate::limit::metrics::LimitMetrics;

/// A view of one concurrency limit, shared by every clone of the service: its current limit and
/// how many requests hold a permit. Cheap to clone.
#[derive(Clone)]
pub struct LimitHandle {
    shared: Arc<Limiter>,
}

pub(super) struct Limiter {
    state: Mutex<State>,
    metrics: LimitMetrics,
    /// Whether latency samples are wanted (a fixed limit never reads the clock).
    adaptive: bool,
}

struct State {
    in_flight: u32,
    limit: u32,
    vegas: Option<Vegas>,
    /// Tasks waiting for a permit (wait mode); all are woken when one is released, since a woken
    /// task may no longer want the permit.
    waiters: Vec<Waker>,
}

impl fmt::Debug for LimitHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("LimitHandle")
            .field("limit", &state.limit)
            .field("in_flight", &state.in_flight)
            .finish()
    }
}

impl LimitHandle {
    pub(super) fn new(config: &ConcurrencyConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let (limit, vegas) = match config.algorithm {
            LimitAlgorithm::Fixed(max) => (max, None),
            LimitAlgorithm::Vegas(vegas) => {
                let vegas = Vegas::new(vegas);
                (vegas.limit(), Some(vegas))
            }
        };
        let metrics = LimitMetrics::new("concurrency", config.name.as_ref(), config.meter.as_ref());
        metrics.limit(limit);
        Ok(Self {
            shared: Arc::new(Limiter {
                state: Mutex::new(State {
                    in_flight: 0,
                    limit,
                    vegas,
                    waiters: Vec::new(),
                }),
                metrics,
                adaptive: matches!(config.algorithm, LimitAlgorithm::Vegas(_)),
            }),
        })
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.shared.lock().limit
    }

    /// Requests currently holding a permit (reserved in `poll_ready`, or in flight until their
    /// response body ends).
    pub fn in_flight(&self) -> u32 {
        self.shared.lock().in_flight
    }

    /// Takes a permit if under the limit; otherwise registers `waker`, if any, for a wake-up.
    pub(super) fn try_acquire(&self, waker: Option<&Waker>) -> Option<LimitPermit> {
        let mut state = self.shared.lock();
        if state.in_flight < state.limit {
            state.in_flight += 1;
            let in_flight = state.in_flight;
            drop(state);
            return Some(LimitPermit {
                shared: Some(self.shared.clone()),
                in_flight,
                started: None,
            });
        }
        if let Some(waker) = waker
            && !state.waiters.iter().any(|w| w.will_wake(waker))
        {
            state.waiters.push(waker.clone());
        }
        None
    }

    pub(super) fn record_rejection(&self) {
        self.shared.metrics.rejected();
    }
}

impl Limiter {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// One request's place under the limit, released when the response body ends, fails or is
/// dropped (whichever comes first).
pub(super) struct LimitPermit {
    shared: Option<Arc<Limiter>>,
    /// Requests in flight when this one was admitted, itself included (for Vegas).
    in_flight: u32,
    /// When the request was sent (adaptive limits only).
    started: Option<Instant>,
}

impl fmt::Debug for LimitPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitPermit")
            .field("in_flight", &self.in_flight)
            .field("started", &self.started)
            .finish()
    }
}

impl LimitPermit {
    /// Restarts the latency clock (when the request is sent rather than reserved).
    pub(super) fn start_clock(&mut self) {
        if self.shared.as_ref().is_some_and(|shared| shared.adaptive) {
            self.started = Some(mesh_core::time::now());
        }
    }

    /// Releases the permit after a complete response: its latency is a sample for an adaptive
    /// limit.
    pub(super) fn finish(mut self) {
        let sample = self.started.map(|started| {
            let now = mesh_core::time::now();
            (now.saturating_duration_since(started), now)
        });
        self.release(sample);
    }

    fn release(&mut self, sample: Option<(std::time::Duration, Instant)>) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let mut state = shared.lock();
        state.in_flight -= 1;
        let mut changed = None;
        if let Some((rtt, now)) = sample {
            let in_flight = self.in_flight;
            if let Some(vegas) = &mut state.vegas {
                let limit = vegas.sample(rtt, in_flight, now);
                if limit != state.limit {
                    state.limit = limit;
                    changed = Some(limit);
                }
            }
        }
        let waiters = std::mem::take(&mut state.waiters);
        drop(state);
        if let Some(limit) = changed {
            shared.metrics.limit(limit);
        }
        for waker in waiters {
            waker.wake();
        }
    }
}

impl Drop for LimitPermit {
    /// Released without a latency sample: the request failed or was cancelled, so its duration says
    /// nothing about how long the service takes to answer.
    fn drop(&mut self) {
        self.release(None);
    }
}
