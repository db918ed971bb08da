//! The EDS and CDS mapping end to end, against Envoy's go-control-plane (`interop/xds-server`):
//! priorities, a DRAINING endpoint, the overprovisioning factor, slow start, zone-aware routing,
//! circuit-breaker limits and a SAN matcher that becomes the endpoints' expected SPIFFE ID; the
//! ignored-fields counter once per cluster version; a TLS context that does not decode is NACKed.
//!
//! Real sockets, so real time: every wait is on a condition bounded by `support::WAIT`.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use mesh_balance::discover::HandleDiscover;
use mesh_balance::{BalanceConfig, LocalityConfig};
use mesh_core::{Endpoint, Locality};
use mesh_test::TestMetrics;
use mesh_xds::{
    CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LbPolicy, LocalityPolicy, Protocol, SlowStartPolicy,
    XdsClient, XdsConfig, XdsStatus, locality_threshold,
};
use serde_json::json;
use support::{ControlPlane, WAIT, backend, next_change};
use tower::discover::Change;

const CLUSTER: &str = "orders";
const ORDERS_ID: &str = "spiffe://cluster.local/ns/shop/sa/orders";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_maps_priorities_draining_slow_start_zones_limits_and_identity() {
    mapping(Protocol::StateOfTheWorld).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_maps_priorities_draining_slow_start_zones_limits_and_identity() {
    mapping(Protocol::Delta).await;
}

/// A snapshot of cluster `orders`: `cluster` is merged into its spec, and its endpoints are
/// `(address, priority, health)`.
fn snapshot(
    version: &str,
    cluster: serde_json::Value,
    endpoints: &[(SocketAddr, u32, &str)],
) -> serde_json::Value {
    let mut spec = json!({
        "name": CLUSTER, "lb_policy": "LEAST_REQUEST",
        "slow_start_window_s": 30, "aggression": 2.0, "min_weight_percent": 20.0,
        "zone_aware": true, "min_cluster_size": 3,
        "max_pending_requests": 64, "max_requests": 100, "max_retries": 4,
        "sans": [ORDERS_ID],
    });
    for (key, value) in cluster.as_object().unwrap() {
        spec[key] = value.clone();
    }
    let endpoints: Vec<_> = endpoints
        .iter()
        .map(|(addr, priority, health)| {
            json!({
                "addr": addr.ip().to_string(), "port": addr.port(), "priority": priority,
                "health": health, "region": "eu", "zone": format!("eu-{priority}"),
            })
        })
        .collect();
    json!({
        "version": version,
        "clusters": [spec],
        "endpoints": [{"cluster": CLUSTER, "endpoints": endpoints, "overprovisioning_factor": 200}],
    })
}

async fn wait_status(client: &XdsClient, what: &str, pred: impl FnMut(&XdsStatus) -> bool) {
    let mut status = client.status();
    let Ok(alive) = tokio::time::timeout(WAIT, status.wait_for(pred)).await else {
        panic!(
            "timed out waiting for {what}: {:?}",
            *client.status().borrow()
        );
    };
    alive.expect("the client is alive");
}

fn accepted(status: &XdsStatus, type_url: &str) -> u64 {
    status.accepted.get(type_url).copied().unwrap_or(0)
}

/// Follows `discover` into `set` until `done(set)` holds.
async fn follow(
    discover: &mut HandleDiscover,
    set: &mut BTreeMap<SocketAddr, Endpoint>,
    done: impl Fn(&BTreeMap<SocketAddr, Endpoint>) -> bool,
) {
    while !done(set) {
        match next_change(discover).await {
            Change::Insert(key, endpoint) => {
                set.insert(key.0, endpoint);
            }
            Change::Remove(key) => {
                set.remove(&key.0);
            }
        }
    }
}

/// `(priority, draining, identity)` of each endpoint.
fn shape(set: &BTreeMap<SocketAddr, Endpoint>) -> BTreeMap<SocketAddr, (u32, bool, Option<&str>)> {
    set.iter()
        .map(|(addr, e)| {
            let id = e.identity().map(|i| i.as_str());
            (*addr, (e.priority(), e.is_draining(), id))
        })
        .collect()
}

/// The `mesh.xds.ignored_fields` count of `field` for `orders`.
fn ignored(metrics: &TestMetrics, field: &str) -> i64 {
    metrics
        .counter("mesh.xds.ignored_fields", "{field}")
        .value(&[("mesh.xds.cluster", CLUSTER), ("mesh.xds.field", field)])
}

async fn mapping(protocol: Protocol) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let metrics = TestMetrics::new();
    let (a, b, c) = (backend().await, backend().await, backend().await);
    let endpoints = [(a, 0, "HEALTHY"), (b, 0, "DRAINING"), (c, 1, "HEALTHY")];
    cp.snapshot(snapshot("1", json!({}), &endpoints)).await;
    let config = XdsConfig::new(cp.uri(), "test-node")
        .protocol(protocol)
        .meter(metrics.meter())
        .backoff_base(Duration::from_millis(50))
        .backoff_max(Duration::from_millis(500))
        .seed(1);
    let client = XdsClient::connect(config).await.unwrap();
    let mut discover = client.discover(CLUSTER);
    client.ready(CLUSTER, WAIT).await.unwrap();
    wait_status(&client, "CDS and EDS", |s| {
        accepted(s, CLUSTER_TYPE_URL) >= 1 && accepted(s, ENDPOINT_TYPE_URL) >= 1
    })
    .await;

    // CDS: slow start, zone-aware routing, limits, the SAN as expected identity.
    let policy = client.cluster_policy(CLUSTER).expect("CDS named orders");
    assert_eq!(policy.lb_policy, LbPolicy::LeastRequest);
    let ramp: &SlowStartPolicy = policy.slow_start.as_ref().expect("slow start");
    assert_eq!(
        (ramp.window, ramp.aggression, ramp.min_weight_percent),
        (Some(Duration::from_secs(30)), Some(2.0), Some(20.0))
    );
    assert_eq!(
        policy.locality,
        Some(LocalityPolicy::ZoneAware {
            routing_enabled: None,
            min_cluster_size: Some(3)
        })
    );
    assert_eq!(policy.expected_identity(), Some(ORDERS_ID));
    let limits = &policy.circuit_breakers;
    assert_eq!(
        (
            limits.max_pending_requests,
            limits.max_requests,
            limits.max_retries
        ),
        (Some(64), Some(100), Some(4))
    );
    let balance = policy.balance_config(BalanceConfig::default());
    assert_eq!(balance.get_max_waiters(), 64);
    let ramp = balance.get_slow_start();
    assert_eq!(
        (
            ramp.get_window(),
            ramp.get_aggression(),
            ramp.get_min_weight_percent()
        ),
        (Duration::from_secs(30), 2.0, 20.0)
    );
    assert!(balance.validate().is_ok());
    let local = Locality::new("eu", "eu-0", "");
    assert_eq!(
        policy.locality_config(&local),
        Some(LocalityConfig::new(local.clone()))
    );
    assert_eq!(
        policy.ignored,
        [
            "slow_start_config.aggression.runtime_key",
            "zone_aware_lb_config.min_cluster_size"
        ]
    );

    // EDS: the overprovisioning factor, and every endpoint with its priority, the draining one
    // kept and marked, all carrying the cluster's SPIFFE ID.
    assert_eq!(client.overprovisioning(CLUSTER), Some(200));
    assert_eq!(locality_threshold(200), 0.5);
    let mut set = BTreeMap::new();
    let expected = BTreeMap::from([
        (a, (0, false, Some(ORDERS_ID))),
        (b, (0, true, Some(ORDERS_ID))),
        (c, (1, false, Some(ORDERS_ID))),
    ]);
    follow(&mut discover, &mut set, |set| shape(set) == expected).await;

    // Metrics: one ignored-field count per field of this cluster version; the endpoints gauge
    // counts the endpoints taking new requests per priority (the draining one is left out).
    assert_eq!(
        ignored(&metrics, "zone_aware_lb_config.min_cluster_size"),
        1
    );
    assert_eq!(
        ignored(&metrics, "slow_start_config.aggression.runtime_key"),
        1
    );
    let gauge = metrics.gauge("mesh.xds.endpoints", "{endpoint}");
    let priority =
        |p: &str| gauge.value(&[("mesh.xds.cluster", CLUSTER), ("mesh.xds.priority", p)]);
    assert_eq!((priority("0"), priority("1")), (1, 1));

    // A new snapshot whose cluster is unchanged (SotW resends it): no new count. The draining
    // endpoint goes back to healthy.
    let cds_before = accepted(&client.status().borrow(), CLUSTER_TYPE_URL);
    let healthy = [(a, 0, "HEALTHY"), (b, 0, "HEALTHY"), (c, 1, "HEALTHY")];
    cp.snapshot(snapshot("2", json!({}), &healthy)).await;
    follow(&mut discover, &mut set, |set| {
        set.get(&b).is_some_and(|e| !e.is_draining())
    })
    .await;
    if protocol == Protocol::StateOfTheWorld {
        wait_status(&client, "the resent CDS", |s| {
            accepted(s, CLUSTER_TYPE_URL) > cds_before
        })
        .await;
    }
    assert_eq!(
        ignored(&metrics, "zone_aware_lb_config.min_cluster_size"),
        1
    );

    // A changed cluster is a new version: counted again. A new SAN reaches the endpoints at once.
    let reviews = "spiffe://cluster.local/ns/shop/sa/orders-v2";
    cp.snapshot(snapshot(
        "3",
        json!({"min_cluster_size": 4, "sans": [reviews]}),
        &healthy,
    ))
    .await;
    follow(&mut discover, &mut set, |set| {
        set.values()
            .all(|e| e.identity().map(|i| i.as_str()) == Some(reviews))
    })
    .await;
    assert_eq!(
        ignored(&metrics, "zone_aware_lb_config.min_cluster_size"),
        2
    );
    let policy = client.cluster_policy(CLUSTER).unwrap();
    assert_eq!(
        policy.locality,
        Some(LocalityPolicy::ZoneAware {
            routing_enabled: None,
            min_cluster_size: Some(4)
        })
    );

    // Several SANs: the list is kept, and endpoints carry no single expected ID.
    let both = [ORDERS_ID, reviews];
    cp.snapshot(snapshot("4", json!({"sans": both}), &healthy))
        .await;
    follow(&mut discover, &mut set, |set| {
        set.values().all(|e| e.identity().is_none())
    })
    .await;
    assert_eq!(
        client.cluster_policy(CLUSTER).unwrap().expected_identities,
        both
    );

    // A TLS context that does not decode: NACKed with a clear reason, the last policy kept.
    cp.snapshot(snapshot("5", json!({"tls_garbage": true}), &healthy))
        .await;
    let nacks = cp.nacks(1).await;
    assert!(
        nacks[0].starts_with(
            r#"cluster "orders": transport_socket.typed_config does not decode as UpstreamTlsContext"#
        ),
        "{nacks:?}"
    );
    wait_status(&client, "the NACK", |s| {
        s.nacked.get(CLUSTER_TYPE_URL).is_some_and(|n| *n >= 1)
    })
    .await;
    assert_eq!(
        client.cluster_policy(CLUSTER).unwrap().expected_identities,
        both
    );
}
