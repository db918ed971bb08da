//! Endpoint churn under load, against go-control-plane: every 200 ms for 10 s the control plane
//! adds, removes and drains endpoints of one cluster while eight callers send requests through a
//! mesh-balance balancer fed by `XdsClient::discover`. No request may fail: a removed or drained
//! endpoint only stops getting new picks, and the requests it has in flight finish (its server
//! stays up, as a real endpoint's would while it drains).
//!
//! Real sockets, so real time: the 200 ms cadence is the scenario itself; the backends take 5 ms
//! per request so that requests are in flight when their endpoint leaves.

mod support;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use mesh_balance::{Balance, BalanceConfig};
use mesh_core::Endpoint;
use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
use mesh_core::server::Server;
use mesh_xds::{ENDPOINT_TYPE_URL, Protocol, XdsClient, XdsConfig};
use serde_json::json;
use support::{ControlPlane, WAIT};
use tokio::net::TcpListener;
use tower::ServiceExt;

const CLUSTER: &str = "orders";
const ENDPOINTS: usize = 6;
const STEP: Duration = Duration::from_millis(200);
const STEPS: usize = 50;
const CALLERS: usize = 8;

/// A backend answering its own address after 5 ms of "work".
async fn slow_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let service = tower::service_fn(move |_req: Request<Incoming>| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(addr.to_string()))))
    });
    tokio::spawn(server.serve(service));
    addr
}

/// Step `step`'s snapshot: endpoint `j` is healthy when `(step + j) % 3 != 0`, else draining
/// (even `j`) or absent (odd `j`). At least four of six are always healthy, and each endpoint
/// leaves and comes back every three steps.
fn snapshot(step: usize, backends: &[SocketAddr]) -> serde_json::Value {
    let endpoints: Vec<_> = backends
        .iter()
        .enumerate()
        .filter_map(|(j, a)| {
            let health = match ((step + j) % 3, j % 2) {
                (0, 1) => return None,
                (0, _) => "DRAINING",
                _ => "HEALTHY",
            };
            Some(json!({"addr": a.ip().to_string(), "port": a.port(), "health": health}))
        })
        .collect();
    json!({
        "version": step.to_string(),
        "clusters": [{"name": CLUSTER, "lb_policy": "LEAST_REQUEST"}],
        "endpoints": [{"cluster": CLUSTER, "endpoints": endpoints}],
    })
}

async fn churn_under_load(protocol: Protocol) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let mut backends = Vec::new();
    for _ in 0..ENDPOINTS {
        backends.push(slow_backend().await);
    }
    cp.snapshot(snapshot(1, &backends)).await;
    let config = XdsConfig::new(cp.uri(), "test-node")
        .protocol(protocol)
        .seed(7);
    let client = XdsClient::connect(config).await.unwrap();
    let make: fn(&Endpoint) -> HttpClient<Empty<Bytes>> =
        |ep| HttpClient::new(ep.clone(), TcpConnector::new(), ClientConfig::default());
    let balance = Balance::new(
        client.discover(CLUSTER),
        make,
        BalanceConfig::default().seed(7),
    )
    .unwrap();
    client.ready(CLUSTER, WAIT).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let (balance, stop, sent) = (balance.clone(), stop.clone(), sent.clone());
        callers.push(tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                let req = Request::get("/").body(Empty::new()).unwrap();
                let res = balance
                    .clone()
                    .oneshot(req)
                    .await
                    .expect("no request fails");
                assert!(res.status().is_success(), "{:?}", res.status());
                let body = res.into_body().collect().await.expect("a whole body");
                seen.insert(String::from_utf8_lossy(&body.to_bytes()).into_owned());
                sent.fetch_add(1, Ordering::Relaxed);
            }
            seen
        }));
    }

    let mut cadence = tokio::time::interval(STEP);
    for step in 2..2 + STEPS {
        cadence.tick().await;
        cp.snapshot(snapshot(step, &backends)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = BTreeSet::new();
    for caller in callers {
        seen.extend(caller.await.expect("a caller saw no failure"));
    }
    // The last snapshot was applied, and nothing was rejected on the way.
    let last = (1 + STEPS).to_string();
    let mut status = client.status();
    let applied = status.wait_for(|s| s.versions.get(ENDPOINT_TYPE_URL) == Some(&last));
    let status = tokio::time::timeout(WAIT, applied)
        .await
        .expect("the last update applied")
        .unwrap()
        .clone();
    assert!(
        status.nacked.is_empty(),
        "no update was rejected: {status:?}"
    );
    assert!(sent.load(Ordering::Relaxed) > 0);
    assert_eq!(
        seen.len(),
        ENDPOINTS,
        "every endpoint took traffic: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_churn_under_load_fails_no_request() {
    churn_under_load(Protocol::StateOfTheWorld).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_churn_under_load_fails_no_request() {
    churn_under_load(Protocol::Delta).await;
}
