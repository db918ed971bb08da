//! What the balancer knows about one endpoint, and the ticket a request carries to report back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mesh_core::Endpoint;
use mesh_core::classify::Outcome;
use tokio::time::Instant;

use crate::eject::{EndpointHealth, OutlierShared};
use crate::load::{EndpointLoad, LoadStrategy};

/// Load, health and weight of one endpoint, shared by the balancer and the endpoint's in-flight
/// requests (which may outlive its removal from discovery).
#[derive(Debug)]
pub(crate) struct EndpointState {
    pub(crate) load: EndpointLoad,
    pub(crate) health: EndpointHealth,
    weight: AtomicU32,
    decay: Duration,
}

impl EndpointState {
    pub(crate) fn new(
        endpoint: &Endpoint,
        strategy: &LoadStrategy,
        outliers: Arc<OutlierShared>,
        now: Instant,
    ) -> Self {
        let (default_rtt, decay) = match strategy {
            LoadStrategy::PeakEwma(c) => (c.default_rtt, c.decay),
            _ => (Duration::ZERO, Duration::from_secs(10)),
        };
        Self {
            load: EndpointLoad::new(default_rtt, now),
            health: EndpointHealth::new(outliers, now),
            weight: AtomicU32::new(endpoint.weight().get()),
            decay,
        }
    }

    pub(crate) fn set_weight(&self, endpoint: &Endpoint) {
        self.weight
            .store(endpoint.weight().get(), Ordering::Relaxed);
    }

    /// The weight the cost is divided by. The one place weights are read, so that slow start can
    /// scale a new endpoint's weight here later.
    pub(crate) fn effective_weight(&self, _now: Instant) -> f64 {
        f64::from(self.weight.load(Ordering::Relaxed).max(1))
    }

    /// The cost of sending this endpoint one more request.
    pub(crate) fn cost(&self, strategy: &LoadStrategy, now: Instant) -> f64 {
        self.load.cost(strategy, now) / self.effective_weight(now)
    }
}

/// Travels with one request from the pick to the end of its response body; reports exactly once.
///
/// Dropped before [`start`](Self::start): the reservation was never used, so only a claimed probe is
/// given back. Dropped after it without an outcome: the request was cancelled, which ends it as
/// pending but tells the outlier gate nothing.
#[derive(Debug)]
pub(crate) struct Ticket {
    state: Arc<EndpointState>,
    probe: bool,
    started: Option<Instant>,
    done: bool,
}

impl Ticket {
    pub(crate) fn new(state: Arc<EndpointState>, probe: bool) -> Self {
        Self {
            state,
            probe,
            started: None,
            done: false,
        }
    }

    /// The request is being sent: it is pending from now on.
    pub(crate) fn start(&mut self) {
        self.state.load.start();
        self.started = Some(Instant::now());
    }

    /// The request ended with `outcome` (`None`: cancelled).
    pub(crate) fn complete(&mut self, outcome: Option<&Outcome>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        match self.started {
            Some(started) => {
                let now = Instant::now();
                let sample = outcome.map(|_| (now.saturating_duration_since(started), now));
                self.state.load.end(sample, self.state.decay);
                self.state.health.record(outcome, self.probe, now);
            }
            None if self.probe => self.state.health.release_probe(Instant::now()),
            None => {}
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.complete(None);
    }
}
