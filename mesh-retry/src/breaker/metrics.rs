//! OpenTelemetry instruments of a breaker. Names, units and attributes are in the
//! [crate's metric table](crate#metrics).

use std::net::SocketAddr;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Meter};

use super::config::BreakerConfig;
use super::core::{BreakerState, Transition};

/// Every state change the state machine makes (`from`, `to`).
const TRANSITIONS: [(BreakerState, BreakerState); 4] = [
    (BreakerState::Closed, BreakerState::Open),
    (BreakerState::Open, BreakerState::HalfOpen),
    (BreakerState::HalfOpen, BreakerState::Open),
    (BreakerState::HalfOpen, BreakerState::Closed),
];

/// One breaker's instruments and its attribute set: `mesh.breaker.name` when named, and the
/// endpoint's `server.address` / `server.port` for a breaker of a
/// [`BreakerRegistry`](super::BreakerRegistry).
///
/// Every series starts at 0 when the breaker is made (a counter that appears only at its first
/// increment is under-counted by Prometheus' `increase()`). A registry breaker sets its state
/// gauge back to 0 (closed) when it is dropped, so an endpoint that left does not read "open"
/// forever.
#[derive(Debug)]
pub(super) struct BreakerMetrics {
    transitions: Counter<u64>,
    state: Gauge<u64>,
    rejected: Counter<u64>,
    attributes: Vec<KeyValue>,
    zero_on_drop: bool,
}

impl BreakerMetrics {
    pub(super) fn new(config: &BreakerConfig, endpoint: Option<SocketAddr>) -> Self {
        let meter = config
            .meter
            .clone()
            .unwrap_or_else(|| opentelemetry::global::meter("mesh-retry"));
        Self::with_meter(&meter, config, endpoint)
    }

    fn with_meter(meter: &Meter, config: &BreakerConfig, endpoint: Option<SocketAddr>) -> Self {
        let mut attributes: Vec<KeyValue> = config
            .name
            .clone()
            .map(|name| KeyValue::new("mesh.breaker.name", name))
            .into_iter()
            .collect();
        if let Some(addr) = endpoint {
            attributes.push(KeyValue::new("server.address", addr.ip().to_string()));
            attributes.push(KeyValue::new("server.port", i64::from(addr.port())));
        }
        let this = Self {
            transitions: meter
                .u64_counter("mesh.breaker.transitions")
                .with_unit("{transition}")
                .with_description("Circuit breaker state changes")
                .build(),
            state: meter
                .u64_gauge("mesh.breaker.state")
                .with_unit("{state}")
                .with_description("Circuit breaker state: 0 closed, 1 half-open, 2 open")
                .build(),
            rejected: meter
                .u64_counter("mesh.breaker.rejected")
                .with_unit("{request}")
                .with_description("Requests refused by an open circuit breaker")
                .build(),
            attributes,
            zero_on_drop: endpoint.is_some(),
        };
        this.state.record(0, &this.attributes);
        this.rejected.add(0, &this.attributes);
        for (from, to) in TRANSITIONS {
            this.transitions
                .add(0, &this.transition_attributes(from, to));
        }
        this
    }

    fn transition_attributes(&self, from: BreakerState, to: BreakerState) -> Vec<KeyValue> {
        let mut attrs = vec![
            KeyValue::new("mesh.breaker.from", from.as_str()),
            KeyValue::new("mesh.breaker.to", to.as_str()),
        ];
        attrs.extend_from_slice(&self.attributes);
        attrs
    }

    pub(super) fn transition(&self, transition: Transition) {
        self.transitions.add(
            1,
            &self.transition_attributes(transition.from, transition.to),
        );
        let value = match transition.to {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        };
        self.state.record(value, &self.attributes);
    }

    pub(super) fn rejected(&self) {
        self.rejected.add(1, &self.attributes);
    }
}

impl Drop for BreakerMetrics {
    fn drop(&mut self) {
        if self.zero_on_drop {
            self.state.record(0, &self.attributes);
        }
    }
}
