//! The gauges of the xDS client against go-control-plane: the current version per type, the
//! accept time of the last update, and the endpoints of each cluster by priority.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use mesh_test::{Kind, TestMetrics};
use mesh_xds::{CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, XdsClient, XdsConfig};
use serde_json::json;
use support::{ControlPlane, WAIT, backend};

type Series = BTreeMap<BTreeMap<String, String>, u64>;

/// The points of the gauge `name`, by attributes.
fn gauge(metrics: &TestMetrics, name: &str) -> Series {
    let metric = metrics.get(name);
    assert_eq!(metric.kind, Kind::Gauge, "{name} is not a gauge");
    metric
        .points
        .iter()
        .map(|p| (p.labels(), u64::try_from(p.value).expect("a u64 gauge")))
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
    let metrics = TestMetrics::new();
    let (a, b, c) = (backend().await, backend().await, backend().await);
    cp.snapshot(snapshot("1", &[(a, 0), (b, 0), (c, 1)])).await;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let config = XdsConfig::new(cp.uri(), "test-node").meter(metrics.meter());
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

    let endpoints = gauge(&metrics, "mesh.xds.endpoints");
    let series = |priority: &str| {
        attrs(&[
            ("mesh.xds.cluster", "orders"),
            ("mesh.xds.priority", priority),
        ])
    };
    assert_eq!(endpoints, [(series("0"), 2), (series("1"), 1)].into());
    let versions = gauge(&metrics, "mesh.xds.version");
    let version = |kind: &str, v: &str| attrs(&[("mesh.xds.type", kind), ("mesh.xds.version", v)]);
    assert_eq!(
        versions,
        [(version("cds", "1"), 1), (version("eds", "1"), 1)].into()
    );
    let times = gauge(&metrics, "mesh.xds.update.time");
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
    let endpoints = gauge(&metrics, "mesh.xds.endpoints");
    assert_eq!(endpoints, [(series("0"), 1), (series("1"), 0)].into());
    let versions = gauge(&metrics, "mesh.xds.version");
    assert_eq!(versions[&version("eds", "1")], 0);
    assert_eq!(versions[&version("eds", "2")], 1);
}
