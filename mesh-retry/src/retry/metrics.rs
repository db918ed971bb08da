//! The retry layer's OpenTelemetry instruments.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter};

/// Counters of the retry layer; names, units and attributes are in the
/// [crate's metric table](crate#metrics).
#[derive(Clone, Debug)]
pub(super) struct RetryMetrics {
    retries: Counter<u64>,
    budget_exhausted: Counter<u64>,
    not_replayable: Counter<u64>,
}

impl RetryMetrics {
    pub(super) fn new(meter: &Meter) -> Self {
        Self {
            retries: meter
                .u64_counter("mesh.retry.retries")
                .with_unit("{retry}")
                .with_description("Retries sent, by reason")
                .build(),
            budget_exhausted: meter
                .u64_counter("mesh.retry.budget_exhausted")
                .with_unit("{retry}")
                .with_description("Retries wanted but refused by the retry budget")
                .build(),
            not_replayable: meter
                .u64_counter("mesh.retry.not_replayable")
                .with_unit("{retry}")
                .with_description(
                    "Retries wanted but impossible because the body cannot be replayed",
                )
                .build(),
        }
    }

    pub(super) fn retry(&self, reason: &'static str) {
        self.retries
            .add(1, &[KeyValue::new("mesh.retry.reason", reason)]);
    }

    pub(super) fn budget_exhausted(&self, reason: &'static str) {
        self.budget_exhausted
            .add(1, &[KeyValue::new("mesh.retry.reason", reason)]);
    }

    pub(super) fn not_replayable(&self, status: &'static str) {
        self.not_replayable
            .add(1, &[KeyValue::new("mesh.retry.replay_status", status)]);
    }
}
