//! An in-memory OpenTelemetry metrics pipeline and a typed view of what it exported.
//!
//! Every layer crate records its metrics on an `opentelemetry::metrics::Meter` it is given; a test
//! hands it [`TestMetrics::meter`] and then asks for one instrument by name. Export is cumulative,
//! so the latest export holds every point recorded so far: a test can look again after more
//! traffic without keeping track of deltas.

use std::collections::BTreeMap;
use std::fmt;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, HistogramDataPoint, MetricData, ResourceMetrics,
};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

/// A point's attributes as `key → value` strings, sorted by key: easy to compare and to print.
pub type Attributes = BTreeMap<String, String>;

/// An SDK meter provider whose metrics land in an in-memory exporter each time a test looks.
///
/// One per test: instruments are registered per provider, so tests never see each other's
/// points. The periodic reader's own interval (60 s) never fires in a test that looks through
/// this type first: every look forces a flush.
pub struct TestMetrics {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

impl fmt::Debug for TestMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestMetrics").finish_non_exhaustive()
    }
}

impl Default for TestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl TestMetrics {
    /// A fresh provider and exporter.
    pub fn new() -> Self {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        Self { provider, exporter }
    }

    /// A meter of this provider (scope `mesh-test`), to hand to the layer under test.
    pub fn meter(&self) -> Meter {
        self.provider.meter("mesh-test")
    }

    /// The provider itself, for code that takes a `MeterProvider`.
    pub fn provider(&self) -> &SdkMeterProvider {
        &self.provider
    }

    /// Flushes and returns the latest export, or `None` if nothing was ever recorded.
    pub fn snapshot(&self) -> Option<ResourceMetrics> {
        // Only the latest export matters (cumulative); dropping older ones bounds memory.
        self.exporter.reset();
        self.provider
            .force_flush()
            .expect("flush the test meter provider");
        self.exporter
            .get_finished_metrics()
            .expect("read the in-memory exporter")
            .pop()
    }

    /// The integer instrument `name` (counter, up-down counter or gauge), or `None` if it has
    /// no points yet.
    ///
    /// # Panics
    ///
    /// If `name` is a histogram or a floating-point instrument: use [`histogram`](Self::histogram).
    pub fn find(&self, name: &str) -> Option<Metric> {
        let snapshot = self.snapshot()?;
        let metric = snapshot
            .scope_metrics()
            .flat_map(|scope| scope.metrics())
            .find(|metric| metric.name() == name)?;
        let (kind, points) = match metric.data() {
            AggregatedMetrics::U64(MetricData::Sum(sum)) => (
                Kind::of_sum(sum.is_monotonic()),
                points(
                    sum.data_points()
                        .map(|p| (p.attributes(), to_i64(p.value()))),
                ),
            ),
            AggregatedMetrics::I64(MetricData::Sum(sum)) => (
                Kind::of_sum(sum.is_monotonic()),
                points(sum.data_points().map(|p| (p.attributes(), p.value()))),
            ),
            AggregatedMetrics::U64(MetricData::Gauge(gauge)) => (
                Kind::Gauge,
                points(
                    gauge
                        .data_points()
                        .map(|p| (p.attributes(), to_i64(p.value()))),
                ),
            ),
            AggregatedMetrics::I64(MetricData::Gauge(gauge)) => (
                Kind::Gauge,
                points(gauge.data_points().map(|p| (p.attributes(), p.value()))),
            ),
            other => panic!("{name} is not an integer sum or gauge: {other:?}"),
        };
        Some(Metric {
            name: name.to_owned(),
            unit: metric.unit().to_owned(),
            kind,
            points,
        })
    }

    /// As [`find`](Self::find), for an instrument that must exist.
    ///
    /// # Panics
    ///
    /// If nothing was recorded under `name`.
    pub fn get(&self, name: &str) -> Metric {
        self.find(name)
            .unwrap_or_else(|| panic!("no metric named {name}"))
    }

    /// The counter (monotonic sum) `name`, checking that it is one and that its unit is `unit`.
    pub fn counter(&self, name: &str, unit: &str) -> Metric {
        self.get(name).expect(Kind::Counter, unit)
    }

    /// The up-down counter `name`, checking its kind and unit.
    pub fn up_down_counter(&self, name: &str, unit: &str) -> Metric {
        self.get(name).expect(Kind::UpDownCounter, unit)
    }

    /// The gauge `name`, checking its kind and unit.
    pub fn gauge(&self, name: &str, unit: &str) -> Metric {
        self.get(name).expect(Kind::Gauge, unit)
    }

    /// Every point of the `f64` histogram `name`; empty if it has none yet.
    pub fn histogram(&self, name: &str) -> Vec<HistogramDataPoint<f64>> {
        let Some(snapshot) = self.snapshot() else {
            return Vec::new();
        };
        snapshot
            .scope_metrics()
            .flat_map(|scope| scope.metrics())
            .filter(|metric| metric.name() == name)
            .find_map(|metric| match metric.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    Some(h.data_points().cloned().collect())
                }
                _ => None,
            })
            .unwrap_or_default()
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).expect("a test counter beyond i64::MAX")
}

fn points<'a>(raw: impl Iterator<Item = (impl Iterator<Item = &'a KeyValue>, i64)>) -> Vec<Point> {
    raw.map(|(attributes, value)| Point {
        attributes: attributes.cloned().collect(),
        value,
    })
    .collect()
}

/// What kind of instrument a [`Metric`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic sum.
    Counter,
    /// A non-monotonic sum.
    UpDownCounter,
    /// A last-value gauge.
    Gauge,
}

impl Kind {
    fn of_sum(monotonic: bool) -> Self {
        if monotonic {
            Self::Counter
        } else {
            Self::UpDownCounter
        }
    }
}

/// One exported integer instrument: its unit, kind and points.
#[derive(Clone, Debug)]
pub struct Metric {
    /// The instrument's name.
    pub name: String,
    /// The instrument's unit (`{request}`, `s`, …).
    pub unit: String,
    /// What kind of instrument it is.
    pub kind: Kind,
    /// One point per attribute set, in export order.
    pub points: Vec<Point>,
}

/// One data point: its attributes (as exported, typed) and its value.
#[derive(Clone, Debug)]
pub struct Point {
    /// The attributes as exported.
    pub attributes: Vec<KeyValue>,
    /// The value; `u64` instruments are converted (a test never counts past `i64::MAX`).
    pub value: i64,
}

impl Point {
    /// The attributes as `key → value` strings.
    pub fn labels(&self) -> Attributes {
        self.attributes
            .iter()
            .map(|kv| (kv.key.as_str().to_owned(), kv.value.to_string()))
            .collect()
    }

    /// The value of attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        let key = Key::new(key.to_owned());
        self.attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| &kv.value)
    }

    /// Whether every `key=value` in `with` is among the attributes.
    pub fn has(&self, with: &[(&str, &str)]) -> bool {
        let labels = self.labels();
        with.iter()
            .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
    }
}

impl Metric {
    fn expect(self, kind: Kind, unit: &str) -> Self {
        assert_eq!(self.kind, kind, "kind of {}", self.name);
        assert_eq!(self.unit, unit, "unit of {}", self.name);
        self
    }

    /// The sum of the points whose attributes are exactly `attrs` (no more, no fewer).
    pub fn value(&self, attrs: &[(&str, &str)]) -> i64 {
        let wanted: Attributes = attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.points
            .iter()
            .filter(|point| point.labels() == wanted)
            .map(|point| point.value)
            .sum()
    }

    /// The sum of the points whose attributes include every `key=value` in `with`.
    pub fn value_with(&self, with: &[(&str, &str)]) -> i64 {
        self.points
            .iter()
            .filter(|point| point.has(with))
            .map(|point| point.value)
            .sum()
    }

    /// The sum over every point.
    pub fn total(&self) -> i64 {
        self.points.iter().map(|point| point.value).sum()
    }

    /// Every point as (`key → value` strings, value), for comparing a whole metric at once.
    pub fn labelled(&self) -> Vec<(Attributes, i64)> {
        self.points
            .iter()
            .map(|point| (point.labels(), point.value))
            .collect()
    }

    /// Every attribute set seen, for asserting that no unexpected label appears.
    pub fn attribute_sets(&self) -> Vec<Attributes> {
        self.points.iter().map(Point::labels).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_histograms_are_read_back() {
        let metrics = TestMetrics::new();
        let meter = metrics.meter();
        assert!(metrics.find("requests").is_none(), "nothing recorded yet");

        let requests = meter.u64_counter("requests").with_unit("{request}").build();
        requests.add(2, &[KeyValue::new("outcome", "success")]);
        requests.add(
            1,
            &[
                KeyValue::new("outcome", "failure"),
                KeyValue::new("zone", "a"),
            ],
        );
        let in_flight = meter.i64_up_down_counter("in_flight").build();
        in_flight.add(-1, &[]);
        let limit = meter.u64_gauge("limit").with_unit("{request}").build();
        limit.record(7, &[]);
        let latency = meter.f64_histogram("latency").build();
        latency.record(0.5, &[]);

        let requests = metrics.counter("requests", "{request}");
        assert_eq!(requests.value(&[("outcome", "success")]), 2);
        assert_eq!(
            requests.value(&[("outcome", "failure")]),
            0,
            "exact match only"
        );
        assert_eq!(requests.value_with(&[("outcome", "failure")]), 1);
        assert_eq!(requests.total(), 3);
        assert_eq!(metrics.up_down_counter("in_flight", "").total(), -1);
        assert_eq!(metrics.gauge("limit", "{request}").total(), 7);
        assert_eq!(metrics.histogram("latency")[0].count(), 1);
        assert!(metrics.histogram("absent").is_empty());
    }
}
