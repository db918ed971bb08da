//! OpenTelemetry instruments of a breaker. Names, units and attributes are in the
//! [crate's metric table](crate#metrics).

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Meter};

use super::config::BreakerConfig;
use super::core::{BreakerState, Transition};

#[derive(Debug)]
pub(super) struct BreakerMetrics {
    transitions: Counter<u64>,
    state: Gauge<u64>,
    rejected: Counter<u64>,
    name: Option<KeyValue>,
}

impl BreakerMetrics {
    pub(super) fn new(config: &BreakerConfig) -> Self {
        let meter = config
            .meter
            .clone()
            .unwrap_or_else(|| opentelemetry::global::meter("mesh-retry"));
        Self::with_meter(&meter, config)
    }

    fn with_meter(meter: &Meter, config: &BreakerConfig) -> Self {
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
            name: config
                .name
                .clone()
                .map(|name| KeyValue::new("mesh.breaker.name", name)),
        };
        this.state.record(0, this.name.as_slice());
        this
    }

    pub(super) fn transition(&self, transition: Transition) {
        let mut attrs = vec![
            KeyValue::new("mesh.breaker.from", transition.from.as_str()),
            KeyValue::new("mesh.breaker.to", transition.to.as_str()),
        ];
        attrs.extend(self.name.clone());
        self.transitions.add(1, &attrs);
        let value = match transition.to {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        };
        self.state.record(value, self.name.as_slice());
    }

    pub(super) fn rejected(&self) {
        self.rejected.add(1, self.name.as_slice());
    }
}
