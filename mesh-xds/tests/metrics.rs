//! The gauges of the xDS client against go-control-plane: the current version per type, the
//! accept time of the last update, and the endpoints of each cluster by priority.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use mesh_xds::{CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, XdsClient, XdsConfig};
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use serde_json::json;
use support::{ControlPlane, WAIT, backend};

type Series = BTreeMap<BTreeMap<String, String>, u64>;

/// The points of the u64 gauge `name`, by attributes.
fn gauge(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter, name: &str) -> Series {
    exporter.reset();
    provider.force_flush().unwrap();
    let snapshot = exporter.get_finished_metrics().unwrap().pop().unwrap();
    let metric = snapshot
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .find(|metric| metric.name() == name)
        .unwrap_or_else(|| panic!("no metric named {name}"));
    let AggregatedMetrics::U64(MetricData::Gauge(gauge)) = metric.data() else {
        panic!("{name} is not a u64 gauge");
    };
    gauge
        .data_points()
        .map(|p| {
            let attributes = p
                .attributes()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect();
            (attributes, p.value())
        })
        .collect()
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// One cluster `orders` with `(address, priority)` endpoints.
fn snapshot(version: &str, endpoints: &[(SocketAddr, u32)]) -> serde_json::Value {
    let endpoints: Vec<_> = endpoints
        .iter()
        .map(|(a, priority)| {
            json!({"addr": a.ip().to_string(), "port": a.port(), "priority": priority,
                   "region": "eu", "zone": format!("eu-{priority}")})
        })
        .collect();
    json!({
        "version": version,
        "clusters": [{"name": "orders"}],
        "endpoints": [{"cluster": "orders", "endpoints": endpoints}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_show_versions_update_time_and_endpoints_by_priority() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let (a, b, c) = (backend().await, backend().await, backend().await);
    cp.snapshot(snapshot("1", &[(a, 0), (b, 0), (c, 1)])).await;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let config = XdsConfig::new(cp.uri(), "test-node").meter(provider.meter("xds-test"));
    let client = XdsClient::connect(config).await.unwrap();
    let _discover = client.discover("orders");
    client.ready("orders", WAIT).await.unwrap();
    let mut status = client.status();
    let both = |s: &mesh_xds::XdsStatus| {
        s.versions.get(CLUSTER_TYPE_URL).map(String::as_str) == Some("1")
            && s.versions.get(ENDPOINT_TYPE_URL).map(String::as_str) == Some("1")
    };
    tokio::time::timeout(WAIT, status.wait_for(|s| both(s)))
        .await
        .unwrap()
        .unwrap();

    let endpoints = gauge(&provider, &exporter, "mesh.xds.endpoints");
    let series = |priority: &str| {
        attrs(&[
            ("mesh.xds.cluster", "orders"),
            ("mesh.xds.priority", priority),
        ])
    };
    assert_eq!(endpoints, [(series("0"), 2), (series("1"), 1)].into());
    let versions = gauge(&provider, &exporter, "mesh.xds.version");
    let version = |kind: &str, v: &str| attrs(&[("mesh.xds.type", kind), ("mesh.xds.version", v)]);
    assert_eq!(
        versions,
        [(version("cds", "1"), 1), (version("eds", "1"), 1)].into()
    );
    let times = gauge(&provider, &exporter, "mesh.xds.update.time");
    for kind in ["cds", "eds"] {
        let at = times[&attrs(&[("mesh.xds.type", kind)])];
        assert!(
            at >= before,
            "{kind}: accepted at {at}, test started at {before}"
        );
    }

    // Priority 1 empties: its series goes to 0; the new version replaces the old one.
    cp.snapshot(snapshot("2", &[(a, 0)])).await;
    tokio::time::timeout(
        WAIT,
        status.wait_for(|s| s.versions.get(ENDPOINT_TYPE_URL).map(String::as_str) == Some("2")),
    )
    .await
    .unwrap()
    .unwrap();
    let endpoints = gauge(&provider, &exporter, "mesh.xds.endpoints");
    assert_eq!(endpoints, [(series("0"), 1), (series("1"), 0)].into());
    let versions = gauge(&provider, &exporter, "mesh.xds.version");
    assert_eq!(versions[&version("eds", "1")], 0);
    assert_eq!(versions[&version("eds", "2")], 1);
}
