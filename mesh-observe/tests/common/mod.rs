//! Test harness: an OpenTelemetry SDK with in-memory span and metric exporters.
#![allow(dead_code, unreachable_pub)]

pub mod body;

use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::TracerProvider;
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, HistogramDataPoint, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

use mesh_observe::TraceConfig;

/// One SDK per test: spans exported synchronously as they end, metrics on `flush`.
pub struct Telemetry {
    pub spans: InMemorySpanExporter,
    pub metrics: InMemoryMetricExporter,
    pub tracer_provider: SdkTracerProvider,
    pub meter_provider: SdkMeterProvider,
}

impl Telemetry {
    pub fn new() -> Self {
        let spans = InMemorySpanExporter::default();
        let metrics = InMemoryMetricExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metrics.clone()).build())
            .build();
        Self {
            spans,
            metrics,
            tracer_provider,
            meter_provider,
        }
    }

    /// A layer configuration recording into this SDK, with its own tracer and meter.
    pub fn config(&self) -> TraceConfig {
        TraceConfig::new()
            .tracer(self.tracer_provider.tracer("test"))
            .meter(self.meter_provider.meter("test"))
    }

    pub fn finished_spans(&self) -> Vec<SpanData> {
        self.spans.get_finished_spans().expect("spans")
    }

    /// Every histogram point recorded under `name` (cumulative, so the latest export holds all).
    pub fn histogram(&self, name: &str) -> Vec<HistogramDataPoint<f64>> {
        self.flush();
        let exported = self.metrics.get_finished_metrics().expect("metrics");
        let Some(latest) = exported.last() else {
            return Vec::new();
        };
        for scope in latest.scope_metrics() {
            for metric in scope.metrics() {
                if metric.name() == name
                    && let AggregatedMetrics::F64(MetricData::Histogram(h)) = metric.data()
                {
                    return h.data_points().cloned().collect();
                }
            }
        }
        Vec::new()
    }

    /// Sum points of a `u64` counter or `i64` up-down counter, as (attributes, value).
    pub fn sums(&self, name: &str) -> Vec<(Vec<KeyValue>, i128)> {
        self.flush();
        let exported = self.metrics.get_finished_metrics().expect("metrics");
        let Some(latest) = exported.last() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for scope in latest.scope_metrics() {
            for metric in scope.metrics() {
                if metric.name() != name {
                    continue;
                }
                match metric.data() {
                    AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                        for p in sum.data_points() {
                            out.push((p.attributes().cloned().collect(), i128::from(p.value())));
                        }
                    }
                    AggregatedMetrics::I64(MetricData::Sum(sum)) => {
                        for p in sum.data_points() {
                            out.push((p.attributes().cloned().collect(), i128::from(p.value())));
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }

    fn flush(&self) {
        self.meter_provider.force_flush().expect("flush");
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
