//! The retry layer's OpenTelemetry instruments.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter};

/// Every `mesh.retry.reason` the policy gives (see `RetryPolicy::reason`).
const REASONS: [&str; 7] = [
    "connect",
    "not_sent",
    "timeout",
    "transport",
    "status",
    "overloaded",
    "grpc_status",
];

/// Every `mesh.retry.replay_status` of a body that cannot be replayed.
const NOT_REPLAYABLE: [&str; 3] = ["capped", "body_failed", "passthrough"];

/// Counters of the retry layer; names, units and attributes are in the
/// [crate's metric table](crate#metrics).
///
/// Each counter starts with a 0 point for every attribute set it can take, so a scrape sees the
/// series before its first increment (Prometheus' `increase()` ignores the step from "absent" to
/// the first value, and would read six retries as one or none).
#[derive(Clone, Debug)]
pub(super) struct RetryMetrics {
    retries: Counter<u64>,
    budget_exhausted: Counter<u64>,
    not_replayable: Counter<u64>,
}

impl RetryMetrics {
    pub(super) fn new(meter: &Meter) -> Self {
        let this = Self {
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
        };
        for reason in REASONS {
            let attrs = [KeyValue::new("mesh.retry.reason", reason)];
            this.retries.add(0, &attrs);
            this.budget_exhausted.add(0, &attrs);
        }
        for status in NOT_REPLAYABLE {
            this.not_replayable
                .add(0, &[KeyValue::new("mesh.retry.replay_status", status)]);
        }
        this
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
