//! Active HTTP health checks on a paused clock, with mock probe and endpoint services.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use http::{Request, Response};
use mesh_balance::health::{
    HealthCheck, HealthCheckConfig, HealthCheckLayer, HealthChecked, HealthState, HttpCheck,
};
use mesh_core::Body;
use mesh_test::TestMetrics;
use mesh_test::response::with_body;
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready_ok};
use tower::{Layer, Service};
use tower_test::mock;

type Mock = mock::Mock<Request<Body>, Response<Body>>;
type Handle = mock::Handle<Request<Body>, Response<Body>>;

const INTERVAL: Duration = Duration::from_secs(10);

fn config() -> HealthCheckConfig {
    HealthCheckConfig::new(HealthCheck::http("/healthz".parse().unwrap()))
        .interval(INTERVAL)
        .jitter(0.0)
        .seed(1)
}

/// A checked endpoint (inner mock) probed through a separate mock.
fn checked(config: &HealthCheckConfig) -> (HealthChecked<Mock>, Handle, Handle) {
    let (inner, inner_handle) = mock::pair();
    let (probe, probe_handle) = mock::pair::<Request<Body>, Response<Body>>();
    let checked = HealthChecked::with_probe(inner, probe, config).unwrap();
    (checked, inner_handle, probe_handle)
}

fn response(status: u16) -> Response<Body> {
    with_body(status, Body::from("status page"))
}

/// Waits for the next probe (the paused clock jumps to it) and answers it with `status`.
async fn answer(probes: &mut Handle, status: u16) -> Instant {
    let (request, send) = probes.next_request().await.expect("the checker stopped");
    assert_eq!(request.method(), http::Method::GET);
    assert_eq!(request.uri(), "/healthz");
    send.send_response(response(status));
    Instant::now()
}

/// Waits until the checker sends its next probe, which means it has recorded the last answer;
/// returns the probe unanswered.
async fn next_probe(probes: &mut Handle) -> mock::SendResponse<Response<Body>> {
    probes.next_request().await.expect("the checker stopped").1
}

#[tokio::test(start_paused = true)]
async fn thresholds_flip_the_state_exactly_at_n() {
    let config = config().unhealthy_threshold(3).healthy_threshold(2);
    let (checked, _inner, mut probes) = checked(&config);
    let status = checked.status();

    // Two failures, a pass that resets the run, then two failures again.
    for code in [503, 503, 200, 503, 503] {
        answer(&mut probes, code).await;
    }
    let pending = next_probe(&mut probes).await;
    assert_eq!(
        status.state(),
        HealthState::Healthy,
        "two in a row is not three"
    );
    pending.send_response(response(500));
    let pending = next_probe(&mut probes).await;
    assert_eq!(
        status.state(),
        HealthState::Unhealthy,
        "third failure in a row"
    );
    let unhealthy_since = status.since();
    assert_eq!(unhealthy_since, Instant::now() - INTERVAL);

    pending.send_response(response(200));
    let pending = next_probe(&mut probes).await;
    assert_eq!(
        status.state(),
        HealthState::Unhealthy,
        "one pass is not two"
    );
    pending.send_response(response(204));
    next_probe(&mut probes).await;
    assert_eq!(status.state(), HealthState::Healthy, "second pass in a row");
    assert_eq!(status.since(), unhealthy_since + 2 * INTERVAL);
}

#[tokio::test(start_paused = true)]
async fn probe_errors_and_statuses_outside_the_range_fail() {
    let strict =
        HealthCheck::Http(HttpCheck::new("/healthz".parse().unwrap()).healthy_statuses(200..=200));
    let config = config()
        .check(strict)
        .unhealthy_threshold(1)
        .healthy_threshold(1);
    let (checked, _inner, mut probes) = checked(&config);
    let status = checked.status();

    // `None` answers with a transport error.
    let cases = [
        (Some(301), HealthState::Unhealthy),
        (Some(200), HealthState::Healthy),
        (Some(404), HealthState::Unhealthy),
        (Some(200), HealthState::Healthy),
        (None, HealthState::Unhealthy),
        (Some(200), HealthState::Healthy),
    ];
    let mut pending = next_probe(&mut probes).await;
    for (answer, expected) in cases {
        match answer {
            Some(code) => pending.send_response(response(code)),
            None => pending.send_error(std::io::Error::other("connection reset")),
        }
        pending = next_probe(&mut probes).await;
        assert_eq!(status.state(), expected, "after {answer:?}");
    }

    // The default range passes a redirect.
    let (checked, _inner, mut probes) = self::checked(&config.check(HealthCheck::default()));
    for _ in 0..3 {
        answer(&mut probes, 301).await;
    }
    next_probe(&mut probes).await;
    assert_eq!(checked.status().state(), HealthState::Healthy);
}

#[tokio::test(start_paused = true)]
async fn first_probe_is_immediate_and_jitter_is_bounded_and_seeded() {
    async fn probe_times(seed: u64) -> Vec<Duration> {
        let config = config().jitter(0.15).seed(seed);
        let (_checked, _inner, mut probes) = checked(&config);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..20 {
            times.push(answer(&mut probes, 200).await - start);
        }
        times
    }
    let times = probe_times(7).await;
    assert_eq!(times[0], Duration::ZERO, "the first probe goes out at once");
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for gap in &gaps {
        assert!(
            *gap >= INTERVAL.mul_f64(0.85) && *gap <= INTERVAL.mul_f64(1.15),
            "gap {gap:?} outside 10 s ± 15 %"
        );
    }
    let distinct: std::collections::BTreeSet<_> = gaps.iter().collect();
    assert!(distinct.len() > 10, "jitter is applied: {gaps:?}");
    assert_eq!(probe_times(7).await, times, "same seed, same schedule");
    assert_ne!(
        probe_times(8).await,
        times,
        "another seed, another schedule"
    );
}

#[tokio::test(start_paused = true)]
async fn services_built_by_one_seeded_layer_get_distinct_repeatable_streams() {
    async fn second_probe_offsets(layer: &HealthCheckLayer) -> Vec<Duration> {
        let mut offsets = Vec::new();
        let mut keep = Vec::new();
        for _ in 0..3 {
            let (inner, _inner_handle) = mock::pair::<Request<Body>, Response<Body>>();
            let (probe, mut probes) = mock::pair::<Request<Body>, Response<Body>>();
            keep.push(layer.layer_with_probe(inner, probe));
            let start = answer(&mut probes, 200).await;
            offsets.push(answer(&mut probes, 200).await - start);
        }
        offsets
    }
    let config = config().jitter(0.15).seed(42);
    let first = second_probe_offsets(&HealthCheckLayer::new(config.clone()).unwrap()).await;
    assert!(first[0] != first[1] && first[1] != first[2], "{first:?}");
    let again = second_probe_offsets(&HealthCheckLayer::new(config).unwrap()).await;
    assert_eq!(first, again);
}

#[tokio::test(start_paused = true)]
async fn unhealthy_endpoint_is_pending_and_woken_on_recovery() {
    let config = config().unhealthy_threshold(1).healthy_threshold(2);
    let (mut checked, mut inner, mut probes) = checked(&config);
    let mut task = tokio_test::task::spawn(());

    // Healthy: readiness is the inner service's.
    inner.allow(0);
    assert_pending!(task.enter(|cx, _| checked.poll_ready(cx)));
    inner.allow(1);
    assert!(task.is_woken());
    assert_ready_ok!(task.enter(|cx, _| checked.poll_ready(cx)));

    answer(&mut probes, 503).await;
    let pending = next_probe(&mut probes).await;
    assert_eq!(checked.status().state(), HealthState::Unhealthy);
    let mut task = tokio_test::task::spawn(());
    assert_pending!(task.enter(|cx, _| checked.poll_ready(cx)));

    pending.send_response(response(200));
    let pending = next_probe(&mut probes).await;
    assert!(!task.is_woken(), "one pass is below the healthy threshold");
    assert_pending!(task.enter(|cx, _| checked.poll_ready(cx)));

    pending.send_response(response(200));
    next_probe(&mut probes).await;
    assert!(task.is_woken(), "turning healthy wakes the waiting task");
    assert_ready_ok!(task.enter(|cx, _| checked.poll_ready(cx)));
}

#[tokio::test(start_paused = true)]
async fn starting_unhealthy_admits_after_one_pass() {
    let config = config()
        .initial_state(HealthState::Unhealthy)
        .healthy_threshold(3);
    let (mut checked, _inner, mut probes) = checked(&config);
    let mut task = tokio_test::task::spawn(());
    assert_pending!(task.enter(|cx, _| checked.poll_ready(cx)));

    let status = checked.status();
    let admitted = tokio::spawn(async move { status.wait_for(HealthState::Healthy).await });
    answer(&mut probes, 200).await;
    admitted.await.unwrap();
    assert!(task.is_woken());
    assert_ready_ok!(task.enter(|cx, _| checked.poll_ready(cx)));
}

#[tokio::test(start_paused = true)]
async fn probe_timeout_counts_as_failure() {
    let timeout = Duration::from_secs(2);
    let config = config().timeout(timeout).unhealthy_threshold(2);
    let (checked, _inner, mut probes) = checked(&config);
    let status = checked.status();
    let start = Instant::now();

    let first = next_probe(&mut probes).await; // never answered
    let second = next_probe(&mut probes).await;
    assert_eq!(Instant::now() - start, timeout + INTERVAL);
    assert_eq!(status.state(), HealthState::Healthy);
    // An answer to a probe that already timed out changes nothing.
    first.send_response(response(200));
    next_probe(&mut probes).await;
    drop(second); // held unanswered until the third probe, so it timed out too
    assert_eq!(Instant::now() - start, 2 * (timeout + INTERVAL));
    assert_eq!(status.state(), HealthState::Unhealthy);
}

#[tokio::test(start_paused = true)]
async fn checker_stops_when_the_last_clone_is_dropped() {
    let (checked, _inner, mut probes) = checked(&config());
    let status = checked.status();
    let clone = checked.clone();
    answer(&mut probes, 200).await;

    drop(checked);
    answer(&mut probes, 200).await; // the clone keeps it running

    // A probe in flight when the last clone goes is cancelled, and no other follows, although
    // the status handle is still alive.
    let in_flight = next_probe(&mut probes).await;
    drop(clone);
    assert!(
        probes.next_request().await.is_none(),
        "the probe service was dropped"
    );
    drop(in_flight);
    assert_eq!(status.state(), HealthState::Healthy);
}

#[tokio::test(start_paused = true)]
async fn layer_probes_through_a_clone_of_the_inner_service() {
    let (inner, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let layer = HealthCheckLayer::new(config().unhealthy_threshold(1)).unwrap();
    let mut checked = layer.layer(inner);

    // Probe and traffic share the inner service.
    answer(&mut handle, 200).await;
    let mut task = tokio_test::task::spawn(());
    assert_ready_ok!(task.enter(|cx, _| checked.poll_ready(cx)));
    let call = checked.call(Request::get("/orders/1").body(Body::empty()).unwrap());
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request.uri(), "/orders/1");
    send.send_response(response(200));
    assert_eq!(call.await.unwrap().status(), 200);

    answer(&mut handle, 500).await;
    next_probe(&mut handle).await;
    assert_eq!(checked.status().state(), HealthState::Unhealthy);
    assert_pending!(task.enter(|cx, _| checked.poll_ready(cx)));
}

#[tokio::test(start_paused = true)]
async fn transitions_and_probe_results_are_counted() {
    let metrics = TestMetrics::new();
    let config = config()
        .unhealthy_threshold(1)
        .healthy_threshold(1)
        .timeout(Duration::from_secs(1))
        .meter(metrics.meter());
    let (_checked, _inner, mut probes) = checked(&config);

    answer(&mut probes, 200).await;
    answer(&mut probes, 503).await; // → unhealthy
    let _timed_out = next_probe(&mut probes).await;
    answer(&mut probes, 200).await; // → healthy
    next_probe(&mut probes)
        .await
        .send_error(std::io::Error::other("reset")); // → unhealthy
    next_probe(&mut probes).await;

    let transitions = counter(&metrics, "mesh.balance.health.transitions", "{transition}");
    assert_eq!(
        transitions,
        BTreeMap::from([
            (("mesh.balance.health.state".into(), "healthy".into()), 1),
            (("mesh.balance.health.state".into(), "unhealthy".into()), 2),
        ])
    );
    let probes = counter(&metrics, "mesh.balance.health.probes", "{probe}");
    let result = |r: &str| ("mesh.balance.health.result".to_owned(), r.to_owned());
    assert_eq!(
        probes,
        BTreeMap::from([
            (result("error"), 1),
            (result("malformed"), 0),
            (result("not_serving"), 0),
            (result("status"), 1),
            (result("success"), 2),
            (result("timeout"), 1),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn every_probe_result_and_transition_is_exported_at_zero_from_the_start() {
    let metrics = TestMetrics::new();
    let config = config().meter(metrics.meter());
    // Built, and the checker not yet run: no probe was sent.
    let (_checked, _inner, _probes) = checked(&config);

    let transitions = counter(&metrics, "mesh.balance.health.transitions", "{transition}");
    let state = |s: &str| ("mesh.balance.health.state".to_owned(), s.to_owned());
    assert_eq!(
        transitions,
        BTreeMap::from([(state("healthy"), 0), (state("unhealthy"), 0)])
    );
    let probes = counter(&metrics, "mesh.balance.health.probes", "{probe}");
    let results = [
        "error",
        "malformed",
        "not_serving",
        "status",
        "success",
        "timeout",
    ];
    let result = |r: &str| ("mesh.balance.health.result".to_owned(), r.to_owned());
    assert_eq!(probes, results.iter().map(|r| (result(r), 0)).collect());
}

/// The data points of counter `name` (asserting its unit), keyed by their single attribute.
fn counter(metrics: &TestMetrics, name: &str, unit: &str) -> BTreeMap<(String, String), i64> {
    metrics
        .counter(name, unit)
        .labelled()
        .into_iter()
        .map(|(labels, value)| {
            assert_eq!(labels.len(), 1, "{labels:?}");
            (labels.into_iter().next().unwrap(), value)
        })
        .collect()
}

#[test]
fn invalid_settings_are_named() {
    let http = |range| HealthCheck::Http(HttpCheck::default().healthy_statuses(range));
    let cases = [
        (config().interval(Duration::ZERO), "interval"),
        (config().jitter(1.0), "jitter"),
        (config().jitter(-0.1), "jitter"),
        (config().timeout(Duration::ZERO), "timeout"),
        (config().healthy_threshold(0), "healthy_threshold"),
        (config().unhealthy_threshold(0), "unhealthy_threshold"),
        (
            config().check(http(RangeInclusive::new(300, 200))),
            "check.healthy_statuses",
        ),
        (config().check(http(99..=200)), "check.healthy_statuses"),
        (config().check(http(200..=600)), "check.healthy_statuses"),
        (
            config().check(HealthCheck::grpc("x".repeat(1025))),
            "check.service",
        ),
    ];
    for (config, key) in cases {
        let error = HealthCheckLayer::new(config).unwrap_err();
        assert_eq!(error.key(), key);
        assert!(error.to_string().contains(key), "{error}");
    }
    assert!(HealthCheckLayer::new(config()).is_ok());
    assert!(HealthCheckLayer::new(HealthCheckConfig::default()).is_ok());
}
