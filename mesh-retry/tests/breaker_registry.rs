//! [`BreakerRegistry`]: one breaker per endpoint, its metrics labelled with the endpoint, pruned
//! when the endpoint's service goes away. Metrics are read back from an in-memory SDK exporter.

use std::net::SocketAddr;

use http::{Request, Response};
use mesh_core::classify::MeshClassifier;
use mesh_retry::breaker::{
    BreakerConfig, BreakerMode, BreakerRegistry, BreakerState, CircuitBreaker,
};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tower::{ServiceExt, service_fn};

struct Metrics {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

impl Metrics {
    fn new() -> Self {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        Self { provider, exporter }
    }

    /// Every point of the u64 instrument `name`: its attributes as `key=value` strings (sorted)
    /// and its value.
    fn points(&self, name: &str) -> Vec<(Vec<String>, u64)> {
        self.exporter.reset();
        self.provider.force_flush().unwrap();
        let snapshots = self.exporter.get_finished_metrics().unwrap();
        let Some(metric) = snapshots
            .last()
            .into_iter()
            .flat_map(|s| s.scope_metrics())
            .flat_map(|scope| scope.metrics())
            .find(|metric| metric.name() == name)
        else {
            return Vec::new();
        };
        let attrs = |kvs: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
            let mut v: Vec<String> = kvs.map(|kv| format!("{}={}", kv.key, kv.value)).collect();
            v.sort();
            v
        };
        match metric.data() {
            AggregatedMetrics::U64(MetricData::Gauge(gauge)) => gauge
                .data_points()
                .map(|p| (attrs(&mut p.attributes()), p.value()))
                .collect(),
            AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
                .data_points()
                .map(|p| (attrs(&mut p.attributes()), p.value()))
                .collect(),
            other => panic!("{name}: unexpected data {other:?}"),
        }
    }

    /// The value of `name` for the endpoint at `addr` (and `extra` attributes), if it has a point.
    fn value(&self, name: &str, addr: SocketAddr, extra: &[&str]) -> Option<u64> {
        let mut wanted: Vec<String> = vec![
            "mesh.breaker.name=orders".to_owned(),
            format!("server.address={}", addr.ip()),
            format!("server.port={}", addr.port()),
        ];
        wanted.extend(extra.iter().map(|s| (*s).to_owned()));
        wanted.sort();
        self.points(name)
            .into_iter()
            .find(|(attrs, _)| *attrs == wanted)
            .map(|(_, v)| v)
    }
}

fn registry(metrics: &Metrics) -> BreakerRegistry {
    BreakerRegistry::new(
        BreakerConfig::new()
            .consecutive_failures(1)
            .mode(BreakerMode::Gate)
            .name("orders")
            .seed(7)
            .meter(metrics.provider.meter("test")),
    )
    .unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_endpoint_has_its_own_state_series() {
    let metrics = Metrics::new();
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

    assert_eq!(metrics.value("mesh.breaker.state", a, &[]), Some(2));
    assert_eq!(metrics.value("mesh.breaker.state", b, &[]), Some(0));
    // No point without the endpoint: nothing for the two breakers to overwrite.
    assert!(
        metrics
            .points("mesh.breaker.state")
            .iter()
            .all(|(attrs, _)| attrs.len() == 3),
        "{:?}",
        metrics.points("mesh.breaker.state")
    );
    let opened = ["mesh.breaker.from=closed", "mesh.breaker.to=open"];
    assert_eq!(
        metrics.value("mesh.breaker.transitions", a, &opened),
        Some(1)
    );
    // Zero from the start for the other endpoint and for every transition.
    assert_eq!(
        metrics.value("mesh.breaker.transitions", b, &opened),
        Some(0)
    );
    let closed = ["mesh.breaker.from=half_open", "mesh.breaker.to=closed"];
    assert_eq!(
        metrics.value("mesh.breaker.transitions", a, &closed),
        Some(0)
    );
    assert_eq!(metrics.value("mesh.breaker.rejected", b, &[]), Some(0));
}

#[tokio::test(start_paused = true)]
async fn the_same_address_gets_the_same_breaker_while_it_lives() {
    let metrics = Metrics::new();
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
    let metrics = Metrics::new();
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
    assert_eq!(metrics.value("mesh.breaker.state", b, &[]), Some(2));
    assert_eq!(registry.len(), 2);

    // Discovery removes b: the balancer drops its service, and with it the breaker.
    drop(service_b);
    assert!(registry.find(b).is_none());
    assert_eq!(registry.addresses(), [a]);
    assert_eq!(
        metrics.value("mesh.breaker.state", b, &[]),
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
