//! OpenTelemetry instruments shared by the limits. Names, units and attributes are in the
//! [crate's metric table](crate#metrics).

use std::borrow::Cow;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Meter};

#[derive(Debug)]
pub(super) struct LimitMetrics {
    rejected: Counter<u64>,
    limit: Gauge<u64>,
    attributes: Vec<KeyValue>,
}

impl LimitMetrics {
    pub(super) fn new(
        kind: &'static str,
        name: Option<&Cow<'static, str>>,
        meter: Option<&Meter>,
    ) -> Self {
        let global;
        let meter = match meter {
            Some(meter) => meter,
            None => {
                global = opentelemetry::global::meter("mesh-retry");
                &global
            }
        };
        let mut attributes = vec![KeyValue::new("mesh.limit.kind", kind)];
        attributes.extend(name.map(|n| KeyValue::new("mesh.limit.name", n.clone())));
        let this = Self {
            rejected: meter
                .u64_counter("mesh.limit.rejected")
                .with_unit("{request}")
                .with_description("Requests refused by a concurrency or rate limit")
                .build(),
            limit: meter
                .u64_gauge("mesh.limit.concurrency")
                .with_unit("{request}")
                .with_description("Current concurrency limit (changes over time when adaptive)")
                .build(),
            attributes,
        };
        // A 0 point at once, so the series exists before the first refusal (see the crate's
        // metric docs).
        this.rejected.add(0, &this.attributes);
        this
    }

    pub(super) fn rejected(&self) {
        self.rejected.add(1, &self.attributes);
    }

    pub(super) fn limit(&self, limit: u32) {
        self.limit.record(u64::from(limit), &self.attributes);
    }
}
