//! Test harness: an OpenTelemetry SDK with in-memory span and metric exporters.
#![allow(dead_code, unreachable_pub)]

pub mod body;

use mesh_test::TestMetrics;
use opentelemetry::trace::TracerProvider;
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::metrics::data::HistogramDataPoint;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

use mesh_observe::TraceConfig;

/// One SDK per test: spans exported synchronously as they end, metrics read through
/// `mesh_test::TestMetrics`.
pub struct Telemetry {
    pub spans: InMemorySpanExporter,
    pub tracer_provider: SdkTracerProvider,
    pub metrics: TestMetrics,
}

impl Telemetry {
    pub fn new() -> Self {
        let spans = InMemorySpanExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        Self {
            spans,
            tracer_provider,
            metrics: TestMetrics::new(),
        }
    }

    /// A layer configuration recording into this SDK, with its own tracer and meter.
    pub fn config(&self) -> TraceConfig {
        TraceConfig::new()
            .tracer(self.tracer_provider.tracer("test"))
            .meter(self.metrics.meter())
    }

    pub fn finished_spans(&self) -> Vec<SpanData> {
        self.spans.get_finished_spans().expect("spans")
    }

    /// Every histogram point recorded under `name` (cumulative, so the latest export holds all).
    pub fn histogram(&self, name: &str) -> Vec<HistogramDataPoint<f64>> {
        self.metrics.histogram(name)
    }

    /// Sum points of a `u64` counter or `i64` up-down counter, as (attributes, value).
    pub fn sums(&self, name: &str) -> Vec<(Vec<KeyValue>, i128)> {
        self.metrics
            .find(name)
            .map(|metric| metric.points)
            .unwrap_or_default()
            .into_iter()
            .map(|point| (point.attributes, i128::from(point.value)))
            .collect()
    }
}

/// The value of attribute `key`, if present.
pub fn attr<'a>(attributes: impl IntoIterator<Item = &'a KeyValue>, key: &str) -> Option<Value> {
    let key = Key::new(key.to_owned());
    attributes
        .into_iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.clone())
}

/// The value of attribute `key` as a string, if present.
pub fn attr_str<'a>(
    attributes: impl IntoIterator<Item = &'a KeyValue>,
    key: &str,
) -> Option<String> {
    attr(attributes, key).map(|value| value.as_str().into_owned())
}
