//! How the file and DNS sources report a failure: log, metric, and (optionally) an error item.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter};

use super::DiscoverError;

/// The counter every discovery failure increments.
pub(crate) const ERRORS_METRIC: &str = "mesh.discovery.errors";

/// Logs, counts and optionally forwards discovery failures; built once per source.
#[derive(Debug, Clone)]
pub(crate) struct ErrorReporter {
    errors: Counter<u64>,
    source: &'static str,
    yield_errors: bool,
}

impl ErrorReporter {
    pub(crate) fn new(meter: Option<&Meter>, source: &'static str, yield_errors: bool) -> Self {
        let build = |meter: &Meter| {
            meter
                .u64_counter(ERRORS_METRIC)
                .with_description(
                    "Discovery updates that failed; the source kept its last good endpoint set",
                )
                .with_unit("{error}")
                .build()
        };
        let errors = match meter {
            Some(meter) => build(meter),
            None => build(&opentelemetry::global::meter("mesh-balance")),
        };
        // The series exists, at 0, from the start: one that first appears at its first
        // increment loses that increment to Prometheus' `increase()`.
        errors.add(0, &[KeyValue::new("mesh.discovery.source", source)]);
        Self {
            errors,
            source,
            yield_errors,
        }
    }

    /// Logs and counts `error`; returns it when the source yields error items.
    pub(crate) fn report(&self, error: DiscoverError, kept: usize) -> Option<DiscoverError> {
        tracing::warn!(
            source = self.source,
            kept_endpoints = kept,
            %error,
            "discovery update failed; keeping the last good endpoint set"
        );
        self.errors
            .add(1, &[KeyValue::new("mesh.discovery.source", self.source)]);
        self.yield_errors.then_some(error)
    }
}
