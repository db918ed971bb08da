//! FileDiscover records `mesh.discovery.errors` through the meter in its config.
#![cfg(feature = "file")]

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use mesh_balance::discover::{DiscoverError, FileDiscover, FileDiscoverConfig};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::{Key, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

/// A fresh per-test directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mesh-balance-{test}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let tmp = self.0.join("incoming");
        let path = self.0.join(file);
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A provider whose metrics end up in `exporter` on `force_flush`.
fn provider() -> (SdkMeterProvider, InMemoryMetricExporter) {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    (provider, exporter)
}

/// One data point: its attributes and value.
type Point = (Vec<(Key, Value)>, u64);

/// Every data point of the u64 sum `name`, as (attributes, value); asserts it is monotonic.
fn counter_points(exporter: &InMemoryMetricExporter, name: &str) -> (Vec<Point>, String) {
    let finished = exporter.get_finished_metrics().unwrap();
    let last = finished.last().expect("nothing was exported");
    let metric = last
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .find(|metric| metric.name() == name)
        .unwrap_or_else(|| panic!("no metric named {name}"));
    let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() else {
        panic!("{name} is not a u64 counter: {:?}", metric.data());
    };
    assert!(sum.is_monotonic(), "{name} must be a counter");
    let points = sum
        .data_points()
        .map(|point| {
            let attributes = point
                .attributes()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect();
            (attributes, point.value())
        })
        .collect();
    (points, metric.unit().to_owned())
}

async fn next_error(discover: &mut FileDiscover) -> DiscoverError {
    let item = tokio::time::timeout(
        Duration::from_secs(3600),
        std::future::poll_fn(|cx| Pin::new(&mut *discover).poll_next(cx)),
    )
    .await
    .expect("the stream produced nothing in an hour")
    .expect("discovery streams never end");
    match item {
        Err(e) => e,
        Ok(change) => panic!("expected an error, got {change:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn broken_file_counts_one_error_per_distinct_failure() {
    let dir = TempDir::new("metrics");
    let path = dir.write("orders.toml", "[[endpoints]]\naddr = \"not an address\"\n");
    let (provider, exporter) = provider();
    let config = FileDiscoverConfig::default().meter(provider.meter("test"));
    let mut discover = FileDiscover::with_config(&path, config).unwrap();

    let first = next_error(&mut discover).await;
    assert!(
        matches!(first, DiscoverError::FileInvalid { .. }),
        "{first}"
    );
    provider.force_flush().unwrap();
    let (points, unit) = counter_points(&exporter, "mesh.discovery.errors");
    assert_eq!(unit, "{error}");
    assert_eq!(
        points,
        vec![(
            vec![(
                Key::from_static_str("mesh.discovery.source"),
                Value::from("file")
            )],
            1
        )]
    );

    // A different broken content is a new failure: the same series goes to 2.
    dir.write(
        "orders.toml",
        "[[endpoints]]\naddr = \"10.0.0.1:80\"\nweight = 0\n",
    );
    next_error(&mut discover).await;
    exporter.reset();
    provider.force_flush().unwrap();
    let (points, _) = counter_points(&exporter, "mesh.discovery.errors");
    assert_eq!(points.len(), 1, "one series: {points:?}");
    assert_eq!(points[0].1, 2);
}

#[tokio::test(start_paused = true)]
async fn the_error_series_exists_at_zero_before_the_first_error() {
    let dir = TempDir::new("metrics-zero");
    let path = dir.write("orders.toml", "[[endpoints]]\naddr = \"10.0.0.1:80\"\n");
    let (provider, exporter) = provider();
    let config = FileDiscoverConfig::default().meter(provider.meter("test"));
    let _discover = FileDiscover::with_config(&path, config).unwrap();

    provider.force_flush().unwrap();
    let (points, _) = counter_points(&exporter, "mesh.discovery.errors");
    assert_eq!(
        points,
        vec![(
            vec![(
                Key::from_static_str("mesh.discovery.source"),
                Value::from("file")
            )],
            0
        )]
    );
}
