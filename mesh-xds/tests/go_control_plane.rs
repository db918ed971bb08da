//! mesh-xds against Envoy's own go-control-plane (`interop/xds-server`), with real hyper backends
//! on loopback: initial config, updates as diffs, a NACK, and a control-plane restart.
//!
//! Real sockets, so real time: every wait is on a condition (the client's status channel, the
//! discover stream) bounded by `support::WAIT`, never a sleep.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use mesh_balance::discover::HandleDiscover;
use mesh_balance::{Balance, BalanceConfig, LoadStrategy};
use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
use mesh_core::{Endpoint, EndpointKey};
use mesh_test::TestMetrics;
use mesh_xds::{
    ClusterPolicy, ENDPOINT_TYPE_URL, LbPolicy, Protocol, XdsClient, XdsConfig, XdsStatus,
};
use serde_json::json;
use support::{ControlPlane, WAIT, backend, next_change, ready_changes};
use tower::ServiceExt;
use tower::discover::Change;

const CLUSTER: &str = "orders";

/// Runs each scenario once over State-of-the-World and once over Delta.
macro_rules! both_protocols {
    ($($name:ident),* $(,)?) => {
        mod sotw {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(mesh_xds::Protocol::StateOfTheWorld).await;
            })*
        }
        mod delta {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(mesh_xds::Protocol::Delta).await;
            })*
        }
    };
}

both_protocols!(
    initial_config_reaches_every_endpoint_with_its_weight_and_locality,
    updates_arrive_as_diffs_unhealthy_endpoints_leave_and_draining_ones_stay_marked,
    an_invalid_assignment_is_nacked_and_the_last_good_endpoints_keep_serving,
    a_control_plane_restart_keeps_the_last_config_and_a_later_update_applies,
    a_thousand_endpoint_cluster_is_applied_and_updated_as_a_diff,
    cluster_policies_follow_cds_changes_and_removals,
    a_response_over_the_size_cap_is_refused_and_the_last_endpoints_stay,
    an_unsubscribed_cluster_gets_no_more_updates,
    a_removed_cluster_takes_its_endpoints_along,
);

/// A snapshot with one cluster whose endpoints are `(address, weight, health)`.
fn snapshot(version: &str, endpoints: &[(SocketAddr, u32, &str)]) -> serde_json::Value {
    let endpoints: Vec<_> = endpoints
        .iter()
        .map(|(addr, weight, health)| {
            json!({
                "addr": addr.ip().to_string(), "port": addr.port(), "weight": weight,
                "health": health, "region": "eu", "zone": "eu-1a",
            })
        })
        .collect();
    json!({
        "version": version,
        "clusters": [{"name": CLUSTER, "lb_policy": "LEAST_REQUEST"}],
        "endpoints": [{"cluster": CLUSTER, "endpoints": endpoints}],
    })
}

fn config(cp: &ControlPlane, protocol: Protocol) -> XdsConfig {
    XdsConfig::new(cp.uri(), "test-node")
        .protocol(protocol)
        .node_cluster("tests")
        .backoff_base(Duration::from_millis(50))
        .backoff_max(Duration::from_millis(500))
        .seed(1)
}

async fn wait_status(client: &XdsClient, what: &str, pred: impl FnMut(&XdsStatus) -> bool) {
    let mut status = client.status();
    let waited = tokio::time::timeout(WAIT, status.wait_for(pred)).await;
    let Ok(alive) = waited else {
        panic!(
            "timed out waiting for {what}: {:?}",
            *client.status().borrow()
        );
    };
    alive.expect("the client is alive");
}

fn eds_version(status: &XdsStatus) -> Option<&str> {
    status.versions.get(ENDPOINT_TYPE_URL).map(String::as_str)
}

type Client = HttpClient<Empty<Bytes>>;
type XdsBalance = Balance<HandleDiscover, fn(&Endpoint) -> Client>;

fn http_client(endpoint: &Endpoint) -> Client {
    HttpClient::new(
        endpoint.clone(),
        TcpConnector::new(),
        ClientConfig::default(),
    )
}

/// A balancer over the cluster; round robin, so which endpoints take traffic does not depend on
/// their measured latency.
fn balancer(client: &XdsClient) -> XdsBalance {
    let make: fn(&Endpoint) -> Client = http_client;
    Balance::new(
        client.discover(CLUSTER),
        make,
        BalanceConfig::default().load(LoadStrategy::RoundRobin),
    )
    .expect("valid balance config")
}

/// Sends `n` requests and counts the answering backends.
async fn spread(balance: &XdsBalance, n: usize) -> HashMap<SocketAddr, usize> {
    let mut hits = HashMap::new();
    for _ in 0..n {
        let req = Request::get("/").body(Empty::new()).unwrap();
        let res = balance.clone().oneshot(req).await.expect("a response");
        let body = res.into_body().collect().await.expect("a body").to_bytes();
        let addr: SocketAddr = std::str::from_utf8(&body).unwrap().parse().unwrap();
        *hits.entry(addr).or_default() += 1;
    }
    hits
}

/// The endpoints a stream inserted, by address, after draining `count` changes.
async fn inserted(discover: &mut HandleDiscover, count: usize) -> BTreeMap<SocketAddr, Endpoint> {
    let mut set = BTreeMap::new();
    for _ in 0..count {
        match next_change(discover).await {
            Change::Insert(key, ep) => set.insert(key.0, ep),
            Change::Remove(key) => panic!("unexpected remove of {key}"),
        };
    }
    set
}

async fn initial_config_reaches_every_endpoint_with_its_weight_and_locality(protocol: Protocol) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let (a, b, c) = (backend().await, backend().await, backend().await);
    cp.snapshot(snapshot(
        "1",
        &[(a, 1, "HEALTHY"), (b, 2, "UNKNOWN"), (c, 3, "HEALTHY")],
    ))
    .await;

    let client = XdsClient::connect(config(&cp, protocol)).await.unwrap();
    let mut discover = client.discover(CLUSTER);
    client.ready(CLUSTER, WAIT).await.expect("first EDS answer");

    let set = inserted(&mut discover, 3).await;
    let weights: Vec<(SocketAddr, u32)> =
        set.iter().map(|(k, ep)| (*k, ep.weight().get())).collect();
    let mut expected = vec![(a, 1), (b, 2), (c, 3)];
    expected.sort();
    assert_eq!(weights, expected);
    assert!(set.values().all(|ep| ep.locality().zone() == "eu-1a"));
    assert!(
        ready_changes(&mut discover).is_empty(),
        "nothing beyond the three inserts"
    );

    // CDS (wildcard) was accepted too, and the stream reports one open stream.
    wait_status(&client, "CDS", |s| s.clusters.contains(CLUSTER)).await;
    assert_eq!(client.status().borrow().streams, 1);

    // Real traffic reaches every endpoint.
    let balance = balancer(&client);
    let hits = spread(&balance, 60).await;
    assert_eq!(hits.len(), 3, "all three backends answered: {hits:?}");
    assert!(cp.nacks(0).await.is_empty());
    // The stream spoke the variant asked for, and only that one.
    let (sotw, delta) = cp.requests().await;
    match protocol {
        Protocol::StateOfTheWorld => assert!(sotw > 0 && delta == 0, "{sotw} {delta}"),
        _ => assert!(sotw == 0 && delta > 0, "{sotw} {delta}"),
    }
}

async fn updates_arrive_as_diffs_unhealthy_endpoints_leave_and_draining_ones_stay_marked(
    protocol: Protocol,
) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let (a, b, c) = (backend().await, backend().await, backend().await);
    cp.snapshot(snapshot("1", &[(a, 1, "HEALTHY"), (b, 1, "HEALTHY")]))
        .await;
    let client = XdsClient::connect(config(&cp, protocol)).await.unwrap();
    let mut discover = client.discover(CLUSTER);
    client.ready(CLUSTER, WAIT).await.unwrap();
    assert_eq!(inserted(&mut discover, 2).await.len(), 2);

    // a leaves, b is unchanged, c arrives.
    cp.snapshot(snapshot("2", &[(b, 1, "HEALTHY"), (c, 1, "HEALTHY")]))
        .await;
    wait_status(&client, "version 2", |s| eds_version(s) == Some("2")).await;
    let changes = ready_changes(&mut discover);
    assert!(
        matches!(&changes[..], [Change::Insert(k1, _), Change::Remove(k2)] if k1.0 == c && k2.0 == a),
        "only c inserted and a removed (b untouched): {changes:?}"
    );

    // b drains (kept, marked draining, so requests on it finish) and c turns unhealthy (leaves);
    // a comes back with a new weight.
    cp.snapshot(snapshot(
        "3",
        &[(b, 1, "DRAINING"), (c, 1, "UNHEALTHY"), (a, 4, "HEALTHY")],
    ))
    .await;
    wait_status(&client, "version 3", |s| eds_version(s) == Some("3")).await;
    let changes = ready_changes(&mut discover);
    let removed: Vec<EndpointKey> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Remove(k) => Some(*k),
            Change::Insert(..) => None,
        })
        .collect();
    assert_eq!(removed, [EndpointKey(c)]);
    assert!(
        changes
            .iter()
            .any(|ch| matches!(ch, Change::Insert(k, ep) if k.0 == b && ep.is_draining())),
        "b is replaced by its draining self: {changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|ch| matches!(ch, Change::Insert(k, ep) if k.0 == a && ep.weight().get() == 4))
    );
}

async fn an_invalid_assignment_is_nacked_and_the_last_good_endpoints_keep_serving(
    protocol: Protocol,
) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let (a, b) = (backend().await, backend().await);
    cp.snapshot(snapshot("1", &[(a, 1, "HEALTHY"), (b, 1, "HEALTHY")]))
        .await;
    let client = XdsClient::connect(config(&cp, protocol)).await.unwrap();
    let mut discover = client.discover(CLUSTER);
    client.ready(CLUSTER, WAIT).await.unwrap();
    assert_eq!(inserted(&mut discover, 2).await.len(), 2);
    let balance = balancer(&client);

    // Version 2 drops b but carries an endpoint with port 0: the whole response is refused.
    let port0: SocketAddr = "127.0.0.1:0".parse().unwrap();
    cp.snapshot(snapshot("2", &[(a, 1, "HEALTHY"), (port0, 1, "HEALTHY")]))
        .await;
    wait_status(&client, "a NACK", |s| {
        s.nacked.contains_key(ENDPOINT_TYPE_URL)
    })
    .await;

    let expected = r#"cluster "orders": endpoint 127.0.0.1:0: port 0"#;
    assert_eq!(
        client.status().borrow().last_nack.as_deref(),
        Some(expected)
    );
    assert_eq!(eds_version(&client.status().borrow()), Some("1"));
    // The control plane received our error_detail.
    // The control plane received our error_detail (go-control-plane resends a NACKed version at
    // once, so it may have received it again, paced by our backoff).
    let nacks = cp.nacks(1).await;
    assert!(
        !nacks.is_empty() && nacks.iter().all(|n| n == expected),
        "{nacks:?}"
    );
    // Nothing changed downstream, and both endpoints still take traffic.
    assert!(ready_changes(&mut discover).is_empty());
    let hits = spread(&balance, 40).await;
    assert_eq!(hits.len(), 2, "both endpoints still serve: {hits:?}");

    // Repeated NACKs are paced (50 ms growing to 500 ms here): without pacing, go-control-plane
    // and the client trade tens of thousands of them per second. 20 would take over 5 s.
    let nacked = client.status().borrow().nacked[ENDPOINT_TYPE_URL];
    assert!(nacked < 20, "{nacked} NACKs: not paced");

    // A later valid version is accepted.
    cp.snapshot(snapshot("3", &[(a, 1, "HEALTHY")])).await;
    wait_status(&client, "version 3", |s| eds_version(s) == Some("3")).await;
    let changes = ready_changes(&mut discover);
    assert!(
        matches!(&changes[..], [Change::Remove(k)] if k.0 == b),
        "{changes:?}"
    );
}

async fn a_control_plane_restart_keeps_the_last_config_and_a_later_update_applies(
    protocol: Protocol,
) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let (a, b) = (backend().await, backend().await);
    cp.snapshot(snapshot("1", &[(a, 1, "HEALTHY")])).await;
    let client = XdsClient::connect(config(&cp, protocol)).await.unwrap();
    let mut discover = client.discover(CLUSTER);
    client.ready(CLUSTER, WAIT).await.unwrap();
    assert_eq!(inserted(&mut discover, 1).await.len(), 1);
    let balance = balancer(&client);
    assert_eq!(spread(&balance, 5).await.len(), 1);

    // The control plane goes away: the stream notices, and traffic carries on.
    let xds = cp.xds;
    cp.kill().await;
    wait_status(&client, "the stream to drop", |s| !s.connected).await;
    assert_eq!(spread(&balance, 10).await.get(&a), Some(&10));
    assert!(
        ready_changes(&mut discover).is_empty(),
        "no endpoint was dropped"
    );

    // It comes back on the same address, empty; a new snapshot adds b.
    let cp = ControlPlane::start_at(xds)
        .await
        .expect("go is still there");
    cp.snapshot(snapshot("2", &[(a, 1, "HEALTHY"), (b, 1, "HEALTHY")]))
        .await;
    wait_status(&client, "version 2 on a new stream", |s| {
        s.streams >= 2 && eds_version(s) == Some("2")
    })
    .await;
    let changes = ready_changes(&mut discover);
    assert!(
        matches!(&changes[..], [Change::Insert(k, _)] if k.0 == b),
        "{changes:?}"
    );
    let hits = spread(&balance, 40).await;
    assert_eq!(hits.len(), 2, "the new endpoint takes traffic: {hits:?}");
}

async fn a_thousand_endpoint_cluster_is_applied_and_updated_as_a_diff(protocol: Protocol) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    // Addresses only: no traffic goes to them.
    let addr = |i: u16| SocketAddr::from(([127, 0, 0, 1], 10_000 + i));
    let first: Vec<_> = (0..1000).map(|i| (addr(i), 1, "HEALTHY")).collect();
    cp.snapshot(snapshot("1", &first)).await;
    let client = XdsClient::connect(config(&cp, protocol)).await.unwrap();
    let mut discover = client.discover(CLUSTER);
    client.ready(CLUSTER, WAIT).await.unwrap();
    assert_eq!(inserted(&mut discover, 1000).await.len(), 1000);
    assert!(ready_changes(&mut discover).is_empty());

    // Ten leave, ten arrive, one changes weight: 21 changes, not 1000.
    let mut second: Vec<_> = (10..1010).map(|i| (addr(i), 1, "HEALTHY")).collect();
    second[0].1 = 5;
    cp.snapshot(snapshot("2", &second)).await;
    wait_status(&client, "version 2", |s| eds_version(s) == Some("2")).await;
    let changes = ready_changes(&mut discover);
    let inserts = changes
        .iter()
        .filter(|c| matches!(c, Change::Insert(..)))
        .count();
    assert_eq!((inserts, changes.len() - inserts), (11, 10), "{changes:?}");
}

/// A snapshot of clusters `(name, lb_policy, consecutive_5xx, max_requests)`, no endpoints.
fn clusters(version: &str, clusters: &[(&str, &str, u32, u32)]) -> serde_json::Value {
    let clusters: Vec<_> = clusters
        .iter()
        .map(|(name, lb, c5xx, max)| {
            json!({"name": name, "lb_policy": lb, "consecutive_5xx": c5xx, "max_requests": max})
        })
        .collect();
    json!({"version": version, "clusters": clusters, "endpoints": []})
}

/// `(lb_policy, consecutive_5xx, max_requests)` of one cluster.
type Summary = (LbPolicy, Option<u32>, Option<u32>);

/// The [`Summary`] of every cluster, by name.
fn summary(policies: &BTreeMap<String, ClusterPolicy>) -> BTreeMap<String, Summary> {
    policies
        .iter()
        .map(|(name, p)| {
            let c5xx = p.outlier_detection.as_ref().and_then(|o| o.consecutive_5xx);
            (
                name.clone(),
                (p.lb_policy, c5xx, p.circuit_breakers.max_requests),
            )
        })
        .collect()
}

async fn cluster_policies_follow_cds_changes_and_removals(protocol: Protocol) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    cp.snapshot(clusters("1", &[("orders", "ROUND_ROBIN", 5, 100)]))
        .await;
    let client = XdsClient::connect(config(&cp, protocol)).await.unwrap();
    let mut policies = client.policies();
    let mut wait = async |what: &str, expected: Vec<(&str, Summary)>| {
        let expected: BTreeMap<String, _> = expected
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .collect();
        let waited =
            tokio::time::timeout(WAIT, policies.wait_for(|p| summary(p) == expected)).await;
        assert!(
            waited.is_ok(),
            "timed out waiting for {what}: {:?}",
            summary(&client.policies().borrow())
        );
    };
    wait(
        "the first policy",
        vec![("orders", (LbPolicy::RoundRobin, Some(5), Some(100)))],
    )
    .await;
    assert_eq!(
        client
            .cluster_policy("orders")
            .unwrap()
            .lb_policy
            .load_strategy(),
        Some(mesh_balance::LoadStrategy::RoundRobin)
    );

    // Thresholds and policy change, and a second cluster arrives.
    cp.snapshot(clusters(
        "2",
        &[
            ("orders", "LEAST_REQUEST", 3, 10),
            ("payments", "RING_HASH", 0, 0),
        ],
    ))
    .await;
    wait(
        "the changed policy",
        vec![
            ("orders", (LbPolicy::LeastRequest, Some(3), Some(10))),
            ("payments", (LbPolicy::RingHash, None, None)),
        ],
    )
    .await;

    // The second cluster goes away again (SotW: absent from the full set; Delta: removed).
    cp.snapshot(clusters("3", &[("orders", "LEAST_REQUEST", 3, 10)]))
        .await;
    wait(
        "the removal",
        vec![("orders", (LbPolicy::LeastRequest, Some(3), Some(10)))],
    )
    .await;
    // The status follows (it is published just after the policies).
    wait_status(&client, "the status' cluster set", |s| {
        s.clusters.iter().eq(["orders"])
    })
    .await;
}

/// The integer sum `name` of a metrics snapshot, by `(type, result)` attributes (empty strings
/// for a series without them).
fn sums(metrics: &TestMetrics, name: &str) -> BTreeMap<(String, String), i64> {
    let attribute = |point: &mesh_test::Point, key: &str| {
        point
            .attribute(key)
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    metrics
        .get(name)
        .points
        .iter()
        .map(|p| {
            let key = (
                attribute(p, "mesh.xds.type"),
                attribute(p, "mesh.xds.result"),
            );
            (key, p.value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_streams_and_accepted_and_rejected_updates() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let metrics = TestMetrics::new();
    let a = backend().await;
    cp.snapshot(snapshot("1", &[(a, 1, "HEALTHY")])).await;
    let config = config(&cp, Protocol::StateOfTheWorld).meter(metrics.meter());
    let client = XdsClient::connect(config).await.unwrap();
    let _discover = client.discover(CLUSTER);
    client.ready(CLUSTER, WAIT).await.unwrap();
    wait_status(&client, "CDS", |s| s.clusters.contains(CLUSTER)).await;

    let none = || (String::new(), String::new());
    let series = |kind: &str, result: &str| (kind.to_owned(), result.to_owned());
    assert_eq!(sums(&metrics, "mesh.xds.stream.connected")[&none()], 1);
    assert_eq!(sums(&metrics, "mesh.xds.streams")[&none()], 1);
    let updates = sums(&metrics, "mesh.xds.updates");
    assert_eq!(
        updates.len(),
        6,
        "every series exists from the start: {updates:?}"
    );
    assert!(updates[&series("cds", "accepted")] >= 1);
    assert_eq!(updates[&series("eds", "accepted")], 1);
    assert_eq!(updates[&series("eds", "rejected")], 0);

    let port0: SocketAddr = "127.0.0.1:0".parse().unwrap();
    cp.snapshot(snapshot("2", &[(port0, 1, "HEALTHY")])).await;
    wait_status(&client, "a NACK", |s| {
        s.nacked.contains_key(ENDPOINT_TYPE_URL)
    })
    .await;
    let updates = sums(&metrics, "mesh.xds.updates");
    assert!(updates[&series("eds", "rejected")] >= 1, "{updates:?}");
    assert_eq!(updates[&series("eds", "accepted")], 1);

    // A dropped client takes its "connected" back: wait for its task to end (the status channel
    // closes when the task drops its state, after the stream and its guard).
    let mut status = client.status();
    drop(client);
    let ended = tokio::time::timeout(WAIT, async { while status.changed().await.is_ok() {} });
    ended.await.expect("the stream task ends");
    let connected = sums(&metrics, "mesh.xds.stream.connected");
    assert_eq!(connected[&none()], 0);
}

async fn a_response_over_the_size_cap_is_refused_and_the_last_endpoints_stay(protocol: Protocol) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let a = backend().await;
    cp.snapshot(snapshot("1", &[(a, 1, "HEALTHY")])).await;
    // 8 KiB: the one-endpoint answer fits, a 1000-endpoint one (about 60 KiB) does not.
    let config = config(&cp, protocol).max_response_bytes(8 * 1024);
    let client = XdsClient::connect(config).await.unwrap();
    let mut discover = client.discover(CLUSTER);
    client.ready(CLUSTER, WAIT).await.unwrap();
    assert_eq!(inserted(&mut discover, 1).await.len(), 1);

    let addr = |i: u16| SocketAddr::from(([127, 0, 0, 1], 10_000 + i));
    let big: Vec<_> = (0..1000).map(|i| (addr(i), 1, "HEALTHY")).collect();
    cp.snapshot(snapshot("2", &big)).await;
    wait_status(&client, "the decoder to refuse the response", |s| {
        s.last_stream_error
            .as_deref()
            .is_some_and(|e| e.contains("too large"))
    })
    .await;
    // Nothing of it was applied; the endpoint we had still serves.
    assert_eq!(eds_version(&client.status().borrow()), Some("1"));
    assert!(ready_changes(&mut discover).is_empty());
    let balance = balancer(&client);
    assert_eq!(spread(&balance, 5).await.get(&a), Some(&5));
}

async fn an_unsubscribed_cluster_gets_no_more_updates(protocol: Protocol) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let two = |version: &str, port: u16| {
        let endpoints = |cluster: &str| json!({"cluster": cluster, "endpoints": [{"addr": "127.0.0.1", "port": port}]});
        json!({
            "version": version,
            "clusters": [{"name": "orders"}, {"name": "payments"}],
            "endpoints": [endpoints("orders"), endpoints("payments")],
        })
    };
    cp.snapshot(two("1", 10_001)).await;
    let client = XdsClient::connect(config(&cp, protocol)).await.unwrap();
    let mut orders = client.discover("orders");
    let mut payments = client.discover("payments");
    client.ready("orders", WAIT).await.unwrap();
    client.ready("payments", WAIT).await.unwrap();
    assert_eq!(inserted(&mut orders, 1).await.len(), 1);
    assert_eq!(inserted(&mut payments, 1).await.len(), 1);

    client.unsubscribe("payments");
    cp.snapshot(two("2", 10_002)).await;
    wait_status(&client, "version 2", |s| eds_version(s) == Some("2")).await;
    assert_eq!(
        ready_changes(&mut orders).len(),
        2,
        "orders moved to the new port"
    );
    assert!(
        ready_changes(&mut payments).is_empty(),
        "payments keeps its last set and gets no more updates"
    );
}

async fn a_removed_cluster_takes_its_endpoints_along(protocol: Protocol) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let a = backend().await;
    cp.snapshot(snapshot("1", &[(a, 1, "HEALTHY")])).await;
    let client = XdsClient::connect(config(&cp, protocol)).await.unwrap();
    let mut discover = client.discover(CLUSTER);
    client.ready(CLUSTER, WAIT).await.unwrap();
    assert_eq!(inserted(&mut discover, 1).await.len(), 1);
    wait_status(&client, "CDS", |s| s.clusters.contains(CLUSTER)).await;

    cp.snapshot(json!({"version": "2", "clusters": [], "endpoints": []}))
        .await;
    wait_status(&client, "the cluster's removal", |s| {
        s.clusters.is_empty() && !s.loaded.contains(CLUSTER)
    })
    .await;
    let changes = ready_changes(&mut discover);
    assert!(
        matches!(&changes[..], [Change::Remove(k)] if k.0 == a),
        "{changes:?}"
    );
}
