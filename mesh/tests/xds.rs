//! `mesh::xds`: a whole client from a cluster name, against Envoy's own go-control-plane
//! (`interop/xds-server`) and real hyper backends on loopback. The Go server helper is
//! mesh-xds's own test support, shared by path; without Go the tests say they skipped, unless
//! `MESH_REQUIRE_GO=1`.
//!
//! Real sockets, so real time: every wait is on a condition bounded by `support::WAIT`.

#[path = "../../mesh-xds/tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use mesh::balance::{BalanceConfig, OutlierConfig};
use mesh::core::error::NoEndpoints;
use mesh::core::server::Server;
use mesh::retry::retry::RetryPolicy;
use mesh::xds::{Protocol, XdsClient, XdsConfig, XdsServiceError, XdsServiceExt};
use mesh::{Client, ClientBuilder};
use serde_json::json;
use support::{ControlPlane, WAIT, backend};
use tokio::net::TcpListener;
use tower::ServiceExt;

const CLUSTER: &str = "outbound|8080||reviews.default.svc.cluster.local";

fn config(cp: &ControlPlane, protocol: Protocol) -> XdsConfig {
    XdsConfig::new(cp.uri(), "test-node")
        .protocol(protocol)
        .backoff_base(Duration::from_millis(50))
        .backoff_max(Duration::from_millis(500))
        .seed(7)
}

/// A snapshot of one cluster (`lb_policy`, outlier `consecutive_5xx`, 0 = none) and its endpoints.
fn snapshot(version: &str, lb: &str, c5xx: u32, endpoints: &[SocketAddr]) -> serde_json::Value {
    let endpoints: Vec<_> = endpoints
        .iter()
        .map(|a| json!({"addr": a.ip().to_string(), "port": a.port(), "weight": 1}))
        .collect();
    json!({
        "version": version,
        "clusters": [{"name": CLUSTER, "lb_policy": lb, "consecutive_5xx": c5xx}],
        "endpoints": [{"cluster": CLUSTER, "endpoints": endpoints}],
    })
}

/// Settings that make each test's outcome depend only on what the control plane says: one
/// attempt (no retry hides a failure), a short fail-fast, a seeded balancer.
fn client_settings() -> ClientBuilder {
    Client::builder()
        .retry(RetryPolicy::default().max_attempts(1))
        .balance(BalanceConfig::default().fail_fast_after(Duration::from_millis(200)))
        .seed(11)
}

async fn get(client: &Client) -> Result<(StatusCode, String), mesh::BoxError> {
    let request = Request::get("http://reviews/").body(Empty::<Bytes>::new())?;
    let response = client.clone().oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A backend that answers 503 to everything, counting the requests it saw.
async fn failing_backend() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let service = tower::service_fn(move |_req: Request<Incoming>| {
        counter.fetch_add(1, Ordering::Relaxed);
        async move {
            let mut response = Response::new(Full::new(Bytes::from_static(b"down")));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Ok::<_, Infallible>(response)
        }
    });
    tokio::spawn(server.serve(service));
    (addr, seen)
}

macro_rules! both_protocols {
    ($($name:ident),* $(,)?) => {
        mod sotw {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(mesh::xds::Protocol::StateOfTheWorld).await;
            })*
        }
        mod delta {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(mesh::xds::Protocol::Delta).await;
            })*
        }
    };
}

both_protocols!(
    a_service_from_a_cluster_name_spreads_traffic_over_its_endpoints,
    traffic_follows_the_endpoint_weights,
    traffic_fails_over_to_the_next_priority_when_the_first_is_unhealthy,
    a_cds_change_reconfigures_the_running_client,
    a_removed_cluster_fails_new_requests_fast_with_no_endpoints,
);

async fn a_service_from_a_cluster_name_spreads_traffic_over_its_endpoints(protocol: Protocol) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let backends = [backend().await, backend().await, backend().await];
    cp.snapshot(snapshot("1", "ROUND_ROBIN", 0, &backends))
        .await;
    let xds = XdsClient::connect(config(&cp, protocol)).await.unwrap();
    let client = xds
        .service(CLUSTER)
        .client(client_settings())
        .ready_timeout(WAIT)
        .await
        .unwrap();
    let mut seen: HashMap<String, u32> = HashMap::new();
    for _ in 0..30 {
        let (status, body) = get(&client).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        *seen.entry(body).or_default() += 1;
    }
    // Round robin over three endpoints: ten requests each, give or take the turns skipped while a
    // fresh endpoint's connection was not ready yet.
    assert_eq!(seen.len(), 3, "{seen:?}");
    for addr in &backends {
        let got = seen.get(&addr.to_string()).copied().unwrap_or(0);
        assert!((8..=12).contains(&got), "{addr}: {got} of 30 ({seen:?})");
    }
    assert_eq!(client.status().unwrap().endpoints, 3);
}

async fn traffic_follows_the_endpoint_weights(protocol: Protocol) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let light = [backend().await, backend().await];
    let heavy = backend().await;
    let endpoint = |a: SocketAddr, weight: u32| json!({"addr": a.ip().to_string(), "port": a.port(), "weight": weight});
    cp.snapshot(json!({
        "version": "1",
        "clusters": [{"name": CLUSTER, "lb_policy": "LEAST_REQUEST"}],
        "endpoints": [{"cluster": CLUSTER, "endpoints": [
            endpoint(light[0], 1), endpoint(light[1], 1), endpoint(heavy, 4),
        ]}],
    }))
    .await;
    let xds = XdsClient::connect(config(&cp, protocol)).await.unwrap();
    let client = xds
        .service(CLUSTER)
        .client(client_settings())
        .ready_timeout(WAIT)
        .await
        .unwrap();
    let mut seen: HashMap<String, u32> = HashMap::new();
    for _ in 0..300 {
        let (status, body) = get(&client).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        *seen.entry(body).or_default() += 1;
    }
    // Least request divides each candidate's `pending + 1` by its weight: the weight-4 endpoint
    // wins every draw it is part of (two of three with three endpoints), the others share the
    // rest.
    let got = |a: &SocketAddr| seen.get(&a.to_string()).copied().unwrap_or(0);
    assert!(
        got(&heavy) > 2 * got(&light[0]).max(got(&light[1])),
        "weight 4 vs 1: {seen:?}"
    );
    assert!(
        light.iter().all(|a| got(a) > 0),
        "every endpoint used: {seen:?}"
    );
}

async fn traffic_fails_over_to_the_next_priority_when_the_first_is_unhealthy(protocol: Protocol) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let p0 = backend().await;
    let (p0_bad, _) = failing_backend().await;
    let p1 = [backend().await, backend().await];
    let endpoint = |a: SocketAddr, priority: u32| json!({"addr": a.ip().to_string(), "port": a.port(), "weight": 1, "priority": priority});
    // Envoy's default overprovisioning factor (140 %): priority 0 takes everything while at least
    // 1/1.4 ≈ 71 % of it is healthy.
    cp.snapshot(json!({
        "version": "1",
        "clusters": [{"name": CLUSTER, "lb_policy": "LEAST_REQUEST", "consecutive_5xx": 3}],
        "endpoints": [{"cluster": CLUSTER, "endpoints": [
            endpoint(p0, 0), endpoint(p0_bad, 0), endpoint(p1[0], 1), endpoint(p1[1], 1),
        ]}],
    }))
    .await;
    let xds = XdsClient::connect(config(&cp, protocol)).await.unwrap();
    let base = BalanceConfig::default()
        .fail_fast_after(Duration::from_millis(200))
        .outliers(OutlierConfig::default().failure_rate(0.5, 0, Duration::from_secs(10)));
    let client = xds
        .service(CLUSTER)
        .client(client_settings().balance(base))
        .ready_timeout(WAIT)
        .await
        .unwrap();
    let on_p1 = |body: &str| p1.iter().any(|a| a.to_string() == body);

    // Both priority-0 endpoints in rotation: priority 1 gets nothing, until the failing one is
    // ejected (3 failures in a row).
    let mut sent = 0;
    while client.status().unwrap().ejected == 0 {
        assert!(sent < 100, "the failing endpoint was never ejected");
        let (_, body) = get(&client).await.unwrap();
        assert!(
            !on_p1(&body),
            "priority 1 used while priority 0 was healthy"
        );
        sent += 1;
    }

    // Priority 0 is half healthy (under 71 %): it keeps 0.5 × 1.4 = 70 % of the traffic, and
    // the remaining 30 % spills to priority 1.
    let (mut first, mut second) = (0, 0);
    for _ in 0..200 {
        let (status, body) = get(&client).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        match on_p1(&body) {
            true => second += 1,
            false => first += 1,
        }
    }
    assert!(
        (40..=80).contains(&second),
        "priority 1 took {second} of 200, expected ≈ 60"
    );
    assert_eq!(first + second, 200);
}

async fn a_cds_change_reconfigures_the_running_client(protocol: Protocol) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let good = backend().await;
    let (bad, bad_seen) = failing_backend().await;
    // No outlier detection in the first policy: the local base ejects only after 1000 failures
    // in a row, its failure-rate detector off.
    cp.snapshot(snapshot("1", "ROUND_ROBIN", 0, &[good, bad]))
        .await;
    let xds = XdsClient::connect(config(&cp, protocol)).await.unwrap();
    let base = BalanceConfig::default()
        .fail_fast_after(Duration::from_millis(200))
        .outliers(
            OutlierConfig::default()
                .consecutive_failures(1000)
                .failure_rate(0.5, 0, Duration::from_secs(10)),
        );
    let client = xds
        .service(CLUSTER)
        .client(client_settings().balance(base))
        .ready_timeout(WAIT)
        .await
        .unwrap();
    // 30 requests: 15 failures on the bad endpoint, under its breaker's 20-call minimum.
    for _ in 0..30 {
        get(&client).await.unwrap();
    }
    // Round robin: every other request, give or take a turn skipped while a fresh connection
    // was not ready.
    let bad_before = bad_seen.load(Ordering::Relaxed);
    assert!(
        (13..=17).contains(&bad_before),
        "bad endpoint saw {bad_before} of 30"
    );
    assert_eq!(client.status().unwrap().ejected, 0);
    assert_eq!(
        client.retry_limit().unwrap().get_max(),
        u32::MAX,
        "no max_retries yet"
    );

    // The control plane turns outlier detection on: 3 consecutive 5xx eject.
    // … and bounds retries in flight (`max_retries`).
    let mut v2 = snapshot("2", "ROUND_ROBIN", 3, &[good, bad]);
    v2["clusters"][0]["max_retries"] = json!(2);
    cp.snapshot(v2).await;
    let mut policies = xds.policies();
    tokio::time::timeout(
        WAIT,
        policies.wait_for(|p| {
            p.get(CLUSTER)
                .and_then(|p| p.outlier_detection.as_ref())
                .is_some_and(|o| o.consecutive_5xx == Some(3))
        }),
    )
    .await
    .expect("the new policy in time")
    .unwrap();
    // The follower task applies it right after the watch changed; requests until the failing
    // endpoint is ejected, bounded.
    let mut sent = 0;
    while client.status().unwrap().ejected == 0 {
        assert!(sent < 200, "the failing endpoint was never ejected");
        get(&client).await.unwrap();
        sent += 1;
    }
    let before = bad_seen.load(Ordering::Relaxed);
    for _ in 0..10 {
        let (status, body) = get(&client).await.unwrap();
        assert_eq!((status, body), (StatusCode::OK, good.to_string()));
    }
    assert_eq!(
        bad_seen.load(Ordering::Relaxed),
        before,
        "ejected: no traffic"
    );
}

async fn a_removed_cluster_fails_new_requests_fast_with_no_endpoints(protocol: Protocol) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let good = backend().await;
    cp.snapshot(snapshot("1", "LEAST_REQUEST", 0, &[good]))
        .await;
    let xds = XdsClient::connect(config(&cp, protocol)).await.unwrap();
    let client = xds
        .service(CLUSTER)
        .client(client_settings())
        .ready_timeout(WAIT)
        .await
        .unwrap();
    assert_eq!(get(&client).await.unwrap().0, StatusCode::OK);

    cp.snapshot(json!({"version": "2", "clusters": [], "endpoints": []}))
        .await;
    let mut status = xds.status();
    tokio::time::timeout(WAIT, status.wait_for(|s| !s.clusters.contains(CLUSTER)))
        .await
        .expect("the cluster removed in time")
        .unwrap();
    let error = get(&client).await.unwrap_err();
    assert!(
        mesh::core::is_caused_by::<NoEndpoints>(&*error),
        "expected NoEndpoints, got {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_cluster_fails_with_a_typed_error_after_the_ready_timeout() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let good = backend().await;
    cp.snapshot(snapshot("1", "ROUND_ROBIN", 0, &[good])).await;
    let xds = XdsClient::connect(config(&cp, Protocol::StateOfTheWorld))
        .await
        .unwrap();
    // Wait until CDS has been answered, so the error is about the name, not a slow start.
    let mut status = xds.status();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.clusters.contains(CLUSTER)))
        .await
        .unwrap()
        .unwrap();
    let error = xds
        .service("outbound|8080||no-such-service")
        .ready_timeout(Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, XdsServiceError::UnknownCluster { cluster, .. } if cluster == "outbound|8080||no-such-service"),
        "{error}"
    );
    assert!(
        error.to_string().contains("no CDS answer named it"),
        "{error}"
    );
}

/// A control plane that accepts connections and never answers: `service` fails with the typed
/// error once its ready timeout is up (no Go needed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_control_plane_fails_the_service_after_its_ready_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    let accept = tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket);
        }
    });
    let xds = XdsClient::connect(XdsConfig::new(format!("http://{addr}"), "test-node"))
        .await
        .unwrap();
    let error = xds
        .service(CLUSTER)
        .ready_timeout(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(error, XdsServiceError::UnknownCluster { timeout, .. } if timeout == Duration::from_millis(300)),
        "{error}"
    );
    accept.abort();
}
