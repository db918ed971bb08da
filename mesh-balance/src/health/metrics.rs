//! The health checker's OpenTelemetry counters.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter};

use super::HealthState;

/// Counter of state changes, attribute [`STATE_ATTRIBUTE`].
pub(crate) const TRANSITIONS_METRIC: &str = "mesh.balance.health.transitions";
/// Counter of probes sent, attribute [`RESULT_ATTRIBUTE`].
pub(crate) const PROBES_METRIC: &str = "mesh.balance.health.probes";
/// The state entered: `healthy` or `unhealthy`.
pub(crate) const STATE_ATTRIBUTE: &str = "mesh.balance.health.state";
/// `success`, `timeout`, `error`, `status`, `not_serving` or `malformed`.
pub(crate) const RESULT_ATTRIBUTE: &str = "mesh.balance.health.result";

/// Built once per checker; recording allocates nothing (attribute values are `&'static str`).
#[derive(Debug)]
pub(crate) struct HealthMetrics {
    transitions: Counter<u64>,
    probes: Counter<u64>,
}

impl HealthMetrics {
    pub(crate) fn new(meter: Option<&Meter>) -> Self {
        let build = |meter: &Meter| Self {
            transitions: meter
                .u64_counter(TRANSITIONS_METRIC)
                .with_description("Endpoint health state changes decided by active health checks")
                .with_unit("{transition}")
                .build(),
            probes: meter
                .u64_counter(PROBES_METRIC)
                .with_description("Active health check probes, by result")
                .with_unit("{probe}")
                .build(),
        };
        match meter {
            Some(meter) => build(meter),
            None => build(&opentelemetry::global::meter("mesh-balance")),
        }
    }

    pub(crate) fn probe(&self, result: &'static str) {
        self.probes
            .add(1, &[KeyValue::new(RESULT_ATTRIBUTE, result)]);
    }

    pub(crate) fn transition(&self, state: HealthState) {
        self.transitions
            .add(1, &[KeyValue::new(STATE_ATTRIBUTE, state.as_str())]);
    }
}
