//! [`BreakerRegistry`]: one breaker per endpoint, its metrics labelled with the endpoint, pruned
//! when the endpoint's service goes away. Metrics are read back from an in-memory SDK exporter.

use std::net::SocketAddr;

use http::{Request, Response};
use mesh_core::classify::MeshClassifier;
use mesh_retry::breaker::{
    BreakerConfig, BreakerMode, BreakerRegistry, BreakerState, CircuitBreaker,
};
use mesh_test::TestMetrics;
use tower::{ServiceExt, service_fn};

/// The value of `name` for the endpoint at `addr` (and `extra` `key=value` attributes), if it has
/// a point.
fn value(metrics: &TestMetrics, name: &str, addr: SocketAddr, extra: &[&str]) -> Option<i64> {
    let mut wanted: Vec<String> = vec![
        "mesh.breaker.name=orders".to_owned(),
        format!("server.address={}", addr.ip()),
        format!("server.port={}", addr.port()),
    ];
    wanted.extend(extra.iter().map(|s| (*s).to_owned()));
    wanted.sort();
    let points = metrics.find(name)?.points;
    let labels = |point: &mesh_test::Point| {
        let mut labels: Vec<String> = point
            .labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        labels
    };
    points
        .into_iter()
        .find(|point| labels(point) == wanted)
        .map(|point| point.value)
}

fn registry(metrics: &TestMetrics) -> BreakerRegistry {
    BreakerRegistry::new(
        BreakerConfig::new()
            .consecutive_failures(1)
            .mode(BreakerMode::Gate)
            .name("orders")
            .seed(7)
            .meter(metrics.meter()),
    )
    .unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_endpoint_has_its_own_state_series() {
    let metrics = TestMetrics::new();
    let registry = registry(&metrics);
    let (a, b) = (addr("10.0.0.1:8080"), addr("10.0.0.2:8080"));
    let breaker_a = registry.get(a);
    let breaker_b = registry.get(b);
    breaker_a
        .try_acquire()
        .unwrap()
        .record_error(&std::io::Error::other("connection reset"));
    assert_eq!(breaker_a.state(), BreakerState::Open);
    assert_eq!(breaker_b.state(), BreakerState::Closed);

    assert_eq!(value(&metrics, "mesh.breaker.state", a, &[]), Some(2));
    assert_eq!(value(&metrics, "mesh.breaker.state", b, &[]), Some(0));
    // No point without the endpoint: nothing for the two breakers to overwrite.
    assert!(
        metrics
            .get("mesh.breaker.state")
            .attribute_sets()
            .iter()
            .all(|attrs| attrs.len() == 3),
        "{:?}",
        metrics.get("mesh.breaker.state").attribute_sets()
    );
    let opened = ["mesh.breaker.from=closed", "mesh.breaker.to=open"];
    assert_eq!(
        value(&metrics, "mesh.breaker.transitions", a, &opened),
        Some(1)
    );
    // Zero from the start for the other endpoint and for every transition.
    assert_eq!(
        value(&metrics, "mesh.breaker.transitions", b, &opened),
        Some(0)
    );
    let closed = ["mesh.breaker.from=half_open", "mesh.breaker.to=closed"];
    assert_eq!(
        value(&metrics, "mesh.breaker.transitions", a, &closed),
        Some(0)
    );
    assert_eq!(value(&metrics, "mesh.breaker.rejected", b, &[]), Some(0));
}

#[tokio::test(start_paused = true)]
async fn the_same_address_gets_the_same_breaker_while_it_lives() {
    let metrics = TestMetrics::new();
    let registry = registry(&metrics);
    let a = addr("10.0.0.1:8080");
    let first = registry.get(a);
    first
        .try_acquire()
        .unwrap()
        .record_error(&std::io::Error::other("connection reset"));
    // A rebuilt endpoint service asks again: same breaker, still open.
    assert_eq!(registry.get(a).state(), BreakerState::Open);
    assert_eq!(registry.len(), 1);
    assert_eq!(registry.addresses(), [a]);
}

#[tokio::test(start_paused = true)]
async fn a_removed_endpoint_is_pruned_and_its_gauge_zeroed() {
    let metrics = TestMetrics::new();
    let registry = registry(&metrics);
    let (a, b) = (addr("10.0.0.1:8080"), addr("[::1]:9090"));
    // The endpoint services a balancer holds: gate-mode breakers around the connections.
    let ok = service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(Response::new(()))
    });
    let service_a = CircuitBreaker::with_handle(ok, registry.get(a), MeshClassifier::new());
    let service_b = CircuitBreaker::with_handle(ok, registry.get(b), MeshClassifier::new());
    registry
        .get(b)
        .try_acquire()
        .unwrap()
        .record_error(&std::io::Error::other("connection reset"));
    assert_eq!(value(&metrics, "mesh.breaker.state", b, &[]), Some(2));
    assert_eq!(registry.len(), 2);

    // Discovery removes b: the balancer drops its service, and with it the breaker.
    drop(service_b);
    assert!(registry.find(b).is_none());
    assert_eq!(registry.addresses(), [a]);
    assert_eq!(
        value(&metrics, "mesh.breaker.state", b, &[]),
        Some(0),
        "a pruned endpoint must not read open"
    );
    // a is untouched and still serves.
    assert!(registry.find(a).is_some());
    service_a.oneshot(Request::new(())).await.unwrap();

    // b comes back: a fresh, closed breaker.
    assert_eq!(registry.get(b).state(), BreakerState::Closed);
}

#[test]
fn a_bad_config_is_refused_once_naming_the_key() {
    let err = BreakerRegistry::new(BreakerConfig::new().half_open_probes(0)).unwrap_err();
    assert_eq!(err.key(), "half_open_probes");
}
