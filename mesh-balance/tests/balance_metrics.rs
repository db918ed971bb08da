//! The balancer's OpenTelemetry metrics: names, units, attributes and values after ejections, panic
//! mode, locality spill-over and requests held in flight.

mod support;

use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use mesh_balance::{Balance, BalanceConfig, LocalityConfig, OutlierConfig};
use mesh_core::Locality;
use mesh_test::{Kind, Metric, TestMetrics};
use support::*;
use tower::ServiceExt;
use tower_service::Service;

/// A balancer configuration recording into `metrics`.
fn config(metrics: &TestMetrics, seed: u64) -> BalanceConfig {
    BalanceConfig::default().seed(seed).meter(metrics.meter())
}

/// Whether `metric` is a counter (monotonic), for asserting it beside the unit.
fn monotonic(metric: &Metric) -> bool {
    metric.kind == Kind::Counter
}

#[tokio::test(start_paused = true)]
async fn ejections_and_endpoint_states_are_counted() {
    let metrics = TestMetrics::new();
    let (mut balance, _d, fakes) = balancer(4, config(&metrics, 30));
    fakes[2].set_status(503);
    for _ in 0..200 {
        if balance.status().ejected == 1 {
            break;
        }
        let _ = send(&mut balance).await;
    }
    send_many(&mut balance, 20).await; // the next pick refreshes the counts
    let sent = fakes.iter().map(|f| f.hits()).sum::<usize>() as i64;

    let ejections = metrics.get("mesh.balance.ejections");
    assert_eq!(
        (ejections.unit.as_str(), monotonic(&ejections)),
        ("{ejection}", true)
    );
    assert_eq!(
        ejections.value_with(&[("mesh.balance.ejection.reason", "consecutive")]),
        1
    );
    assert_eq!(ejections.value_with(&[]), 1);

    let endpoints = metrics.get("mesh.balance.endpoints");
    assert_eq!(
        (endpoints.unit.as_str(), monotonic(&endpoints)),
        ("{endpoint}", false)
    );
    let state = |s| endpoints.value_with(&[("mesh.balance.endpoint.state", s)]);
    assert_eq!(
        (state("ready"), state("ejected"), state("unready")),
        (3, 1, 0)
    );

    let requests = metrics.get("mesh.balance.requests");
    assert_eq!(
        (requests.unit.as_str(), monotonic(&requests)),
        ("{request}", true)
    );
    assert_eq!(requests.value_with(&[]), sent);
    // One tier (no local locality), so nothing spills over.
    assert_eq!(
        requests.value_with(&[
            ("mesh.balance.locality.tier", "any"),
            ("mesh.balance.locality.spilled", "false"),
        ]),
        sent
    );

    // Still broken when its time is up: the probe fails and ejects it again.
    fakes[2].set_latency(Duration::from_millis(200));
    tokio::time::sleep(Duration::from_secs(34)).await;
    send_concurrently(&balance, 4, 25).await;
    assert_eq!(fakes[2].hits(), 6, "one probe");
    let ejections = metrics.get("mesh.balance.ejections");
    assert_eq!(
        ejections.value_with(&[("mesh.balance.ejection.reason", "probe")]),
        1
    );
    assert_eq!(ejections.value_with(&[]), 2);
}

#[tokio::test(start_paused = true)]
async fn panic_mode_is_reported_and_a_dropped_balancer_takes_its_counts_back() {
    let metrics = TestMetrics::new();
    let config = config(&metrics, 31).outliers(OutlierConfig::default().max_ejected_share(1.0));
    let (mut balance, _d, fakes) = balancer(4, config);
    for f in &fakes[..3] {
        f.set_status(500);
    }
    for _ in 0..300 {
        if balance.status().ejected == 3 {
            break;
        }
        send(&mut balance).await.unwrap();
    }
    send(&mut balance).await.unwrap();
    assert!(balance.status().panic);

    let active = metrics.get("mesh.balance.panic.active");
    assert_eq!(
        (active.unit.as_str(), monotonic(&active)),
        ("{balancer}", false)
    );
    assert_eq!(active.value_with(&[]), 1);
    let entries = metrics.get("mesh.balance.panic.entries");
    assert_eq!(
        (entries.unit.as_str(), monotonic(&entries)),
        ("{entry}", true)
    );
    assert_eq!(entries.value_with(&[]), 1);
    let endpoints = metrics.get("mesh.balance.endpoints");
    assert_eq!(
        endpoints.value_with(&[("mesh.balance.endpoint.state", "ejected")]),
        3
    );
    assert_eq!(endpoints.value_with(&[]), 4);

    // The counters sum over every balancer sharing the meter: a dropped one leaves nothing behind.
    drop(balance);
    assert_eq!(metrics.get("mesh.balance.panic.active").value_with(&[]), 0);
    let endpoints = metrics.get("mesh.balance.endpoints");
    assert!(
        endpoints.points.iter().all(|p| p.value == 0),
        "{endpoints:?}"
    );
    assert_eq!(metrics.get("mesh.balance.panic.entries").value_with(&[]), 1);
}

#[tokio::test(start_paused = true)]
async fn in_flight_is_per_endpoint_until_the_body_ends() {
    let metrics = TestMetrics::new();
    let (mut balance, _d, fakes) = balancer(2, config(&metrics, 32));
    let held = balance
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let busy = fakes.iter().position(|f| f.hits() == 1).unwrap();
    let port = (10_000 + busy).to_string();

    let in_flight = metrics.get("mesh.balance.endpoint.in_flight");
    assert_eq!(
        (in_flight.unit.as_str(), monotonic(&in_flight)),
        ("{request}", false)
    );
    let of = |view: &Metric, port: &str| {
        view.value_with(&[("server.address", "127.0.0.1"), ("server.port", port)])
    };
    assert_eq!(
        of(&in_flight, &port),
        1,
        "headers are in, the body is not: {in_flight:?}"
    );
    assert_eq!(in_flight.value_with(&[]), 1);

    held.into_body().collect().await.unwrap();
    let in_flight = metrics.get("mesh.balance.endpoint.in_flight");
    assert_eq!(of(&in_flight, &port), 0);
    // Attribute sets are per endpoint: exactly the two addresses, nothing else.
    assert!(
        in_flight
            .attribute_sets()
            .iter()
            .all(|attrs| attrs.len() == 2)
    );
}

#[tokio::test(start_paused = true)]
async fn spilled_requests_are_counted_by_tier() {
    let metrics = TestMetrics::new();
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    // 10 endpoints in the local zone, half of them down; 10 in another zone of the region.
    let mut local = Vec::new();
    for n in 0..20 {
        let zone = if n < 10 { "z1" } else { "z2" };
        let (ep, b) = fleet.endpoint(n, 1, Locality::new("r1", zone, ""));
        handle.insert(&ep);
        if n < 5 {
            b.set_ready(false);
        }
        if n < 10 {
            local.push(b);
        }
    }
    let config = config(&metrics, 33).locality(LocalityConfig::new(Locality::new("r1", "z1", "")));
    let mut balance = Balance::new(discover, fleet.make(), config).unwrap();
    send_many(&mut balance, 1000).await;

    let requests = metrics.get("mesh.balance.requests");
    let route = |tier, spilled| {
        requests.value_with(&[
            ("mesh.balance.locality.tier", tier),
            ("mesh.balance.locality.spilled", spilled),
        ])
    };
    let (stayed, spilled) = (route("zone", "false"), route("region", "true"));
    assert_eq!(stayed + spilled, 1000);
    assert_eq!(stayed, local.iter().map(|b| b.hits()).sum::<usize>() as i64);
    // 5 of 10 healthy at a 70 % threshold keeps 5/7 ≈ 71 % local, the rest spills.
    let share = spilled as f64 / 1000.0;
    assert!((0.24..0.33).contains(&share), "spilled share {share}");
    let endpoints = metrics.get("mesh.balance.endpoints");
    let state = |s| endpoints.value_with(&[("mesh.balance.endpoint.state", s)]);
    assert_eq!((state("ready"), state("unready")), (15, 5));
}

#[tokio::test(start_paused = true)]
async fn every_known_series_is_exported_at_zero_before_its_first_event() {
    // `increase()` over a series that appears at its first increment misses that increment:
    // each series must exist, at 0, from the balancer's start.
    let metrics = TestMetrics::new();
    let (_balance, _d, _fakes) = balancer(2, config(&metrics, 34));

    let ejections = metrics.get("mesh.balance.ejections");
    for reason in ["consecutive", "rate", "probe"] {
        let point = ejections
            .points
            .iter()
            .find(|p| p.has(&[("mesh.balance.ejection.reason", reason)]));
        assert_eq!(point.map(|p| p.value), Some(0), "{reason}: {ejections:?}");
    }
    assert_eq!(ejections.points.len(), 3);
    let entries = metrics.get("mesh.balance.panic.entries");
    assert_eq!(entries.points.len(), 1, "{entries:?}");
    assert_eq!(entries.value_with(&[]), 0);
    let active = metrics.get("mesh.balance.panic.active");
    assert_eq!((active.points.len(), active.value_with(&[])), (1, 0));
    let requests = metrics.get("mesh.balance.requests");
    assert_eq!(
        requests.points.len(),
        8,
        "4 tiers × spilled or not: {requests:?}"
    );
    assert!(requests.points.iter().all(|p| p.value == 0));
    let endpoints = metrics.get("mesh.balance.endpoints");
    assert_eq!(endpoints.points.len(), 4, "{endpoints:?}");
}

#[tokio::test(start_paused = true)]
async fn an_endpoints_in_flight_series_starts_at_zero() {
    let metrics = TestMetrics::new();
    let (mut balance, _d, _fakes) = balancer(2, config(&metrics, 35));
    // The first readiness check applies discovery; nothing has been sent yet.
    let mut t = tokio_test::task::spawn(());
    tokio_test::assert_ready_ok!(t.enter(|cx, _| balance.poll_ready(cx)));
    let in_flight = metrics.get("mesh.balance.endpoint.in_flight");
    assert_eq!(in_flight.points.len(), 2, "{in_flight:?}");
    assert_eq!(in_flight.value_with(&[]), 0);
}

#[tokio::test(start_paused = true)]
async fn a_named_balancer_puts_its_name_on_every_series() {
    let metrics = TestMetrics::new();
    let (mut balance, _d, _fakes) = balancer(2, config(&metrics, 33).name("orders"));
    send_many(&mut balance, 5).await;
    let named = [("mesh.balance.name", "orders")];
    for name in [
        "mesh.balance.endpoints",
        "mesh.balance.ejections",
        "mesh.balance.panic.active",
        "mesh.balance.panic.entries",
        "mesh.balance.requests",
        "mesh.balance.endpoint.in_flight",
    ] {
        let metric = metrics.get(name);
        assert!(!metric.points.is_empty(), "{name}: no series");
        assert!(
            metric.points.iter().all(|p| p.has(&named)),
            "{name}: {metric:?}"
        );
    }
    assert_eq!(metrics.get("mesh.balance.requests").value_with(&named), 5);
    assert_eq!(metrics.get("mesh.balance.endpoints").value_with(&named), 2);
}
