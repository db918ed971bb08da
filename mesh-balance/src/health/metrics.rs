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

/// Every probe result, as in [`RESULT_ATTRIBUTE`]: `success` and each `ProbeFailure::kind`.
const RESULTS: [&str; 6] = [
    "success",
    "timeout",
    "error",
    "status",
    "not_serving",
    "malformed",
];

/// Built once per checker; recording allocates nothing (attribute values are `&'static str`).
///
/// Every series (each result, each state) is recorded with 0 when the checker starts: a series
/// that first appears at its first increment loses that increment to Prometheus' `increase()`.
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
        let metrics = match meter {
            Some(meter) => build(meter),
            None => build(&opentelemetry::global::meter("mesh-balance")),
        };
        for result in RESULTS {
            metrics
                .probes
                .add(0, &[KeyValue::new(RESULT_ATTRIBUTE, result)]);
        }
        for state in [HealthState::Healthy, HealthState::Unhealthy] {
            metrics
                .transitions
                .add(0, &[KeyValue::new(STATE_ATTRIBUTE, state.as_str())]);
        }
        metrics
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
