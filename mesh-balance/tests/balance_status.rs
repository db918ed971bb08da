//! The per-endpoint status report ([`Balance::endpoints`]) and the admin handle: address, tier,
//! readiness, in flight, RTT estimate and outlier gate, on a paused clock.

mod support;

use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use mesh_balance::{Balance, BalanceConfig, EndpointStatus, LocalityConfig, OutlierStatus};
use mesh_core::{Locality, Proximity};
use support::*;
use tokio::time::Instant;
use tower::ServiceExt;
use tower_service::Service;

fn by_port(endpoints: &[EndpointStatus], n: usize) -> &EndpointStatus {
    endpoints
        .iter()
        .find(|e| e.addr == addr(n))
        .unwrap_or_else(|| panic!("no endpoint {} in {endpoints:?}", addr(n)))
}

#[tokio::test(start_paused = true)]
async fn each_endpoint_reports_its_address_weight_and_tier() {
    let local = Locality::new("eu-west", "eu-west-1a", "rack-1");
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let (near, _) = fleet.endpoint(0, 3, local.clone());
    let (far, _) = fleet.endpoint(1, 1, Locality::new("eu-west", "eu-west-1b", ""));
    handle.insert(&near);
    handle.insert(&far);
    let config = BalanceConfig::default()
        .seed(1)
        .locality(LocalityConfig::new(local));
    let mut balance = Balance::new(discover, fleet.make(), config).unwrap();
    assert!(balance.endpoints().is_empty(), "nothing polled yet");

    send(&mut balance).await.unwrap();
    let endpoints = balance.endpoints();
    assert_eq!(endpoints.len(), 2);
    let (a, b) = (by_port(&endpoints, 0), by_port(&endpoints, 1));
    assert_eq!(
        (a.key, a.weight.get(), a.tier),
        (near.key(), 3, Some(Proximity::Subzone))
    );
    assert_eq!(
        (b.key, b.weight.get(), b.tier),
        (far.key(), 1, Some(Proximity::Region))
    );
    assert!(a.ready && b.ready);
    assert_eq!(a.outlier, OutlierStatus::InRotation);
}

#[tokio::test(start_paused = true)]
async fn in_flight_and_rtt_follow_the_requests() {
    let (mut balance, _d, fakes) = balancer(1, BalanceConfig::default().seed(2));
    fakes[0].set_latency(Duration::from_millis(200));
    let held = balance
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let endpoint = balance.endpoints()[0].clone();
    assert_eq!(endpoint.in_flight, 1, "headers are in, the body is not");
    // No sample yet: PeakEWMA's default estimate (30 ms), decayed over the 200 ms since the
    // endpoint was added (decay 10 s).
    let rtt = endpoint.rtt.as_secs_f64();
    assert!(
        (rtt - 0.030 * (-0.02f64).exp()).abs() < 1e-6,
        "{:?}",
        endpoint.rtt
    );

    held.into_body().collect().await.unwrap();
    let endpoint = balance.endpoints()[0].clone();
    assert_eq!(endpoint.in_flight, 0);
    // A peak replaces the estimate at once; no time has passed since, so no decay.
    let rtt = endpoint.rtt.as_secs_f64();
    assert!((rtt - 0.2).abs() < 1e-6, "{:?}", endpoint.rtt);

    // Decayed toward zero while nobody samples it (decay 10 s: e^-1 after 10 s).
    tokio::time::advance(Duration::from_secs(10)).await;
    let rtt = balance.endpoints()[0].rtt.as_secs_f64();
    assert!((rtt - 0.2 / std::f64::consts::E).abs() < 1e-6, "{rtt}");
}

#[tokio::test(start_paused = true)]
async fn an_ejected_endpoint_reports_until_when() {
    let (mut balance, _d, fakes) = balancer(4, BalanceConfig::default().seed(30));
    fakes[2].set_status(503);
    for _ in 0..200 {
        if balance.status().ejected == 1 {
            break;
        }
        let _ = send(&mut balance).await;
    }
    assert_eq!(balance.status().ejected, 1);
    let now = Instant::now();
    let endpoints = balance.endpoints();
    let ejected = by_port(&endpoints, 2);
    let OutlierStatus::Ejected { until } = ejected.outlier else {
        panic!("not ejected: {ejected:?}");
    };
    // The first ejection lasts the base time (30 s), give or take the jitter.
    let remaining = ejected.outlier.remaining(now).unwrap();
    assert!(until > now);
    assert!(remaining > Duration::from_secs(20) && remaining <= Duration::from_secs(40));
    for n in [0, 1, 3] {
        assert_eq!(by_port(&endpoints, n).outlier, OutlierStatus::InRotation);
        assert_eq!(by_port(&endpoints, n).outlier.remaining(now), None);
    }
    // Once its time is up it is still reported ejected (no probe yet), with nothing remaining.
    tokio::time::advance(remaining).await;
    let endpoints = balance.endpoints();
    let outlier = by_port(&endpoints, 2).outlier;
    assert_eq!(outlier.remaining(Instant::now()), Some(Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_gated_by_readiness_reports_not_ready() {
    // A per-endpoint breaker that opened looks like this to the balancer: a service not ready.
    let (mut balance, _d, fakes) = balancer(2, BalanceConfig::default().seed(3));
    send(&mut balance).await.unwrap();
    fakes[1].set_ready(false);
    send_many(&mut balance, 10).await;
    let endpoints = balance.endpoints();
    assert!(by_port(&endpoints, 0).ready);
    assert!(!by_port(&endpoints, 1).ready);
    assert_eq!(balance.status().ready, 1);
}

#[tokio::test(start_paused = true)]
async fn a_handle_reads_the_balancer_without_keeping_it_alive() {
    let config = BalanceConfig::default().seed(4).name("orders");
    let (mut balance, _d, _fakes) = balancer(2, config);
    let handle = balance.handle();
    let copy = handle.clone();
    assert_eq!(handle.name(), Some("orders"));
    send(&mut balance).await.unwrap();
    assert_eq!(handle.status(), Some(balance.status()));
    assert_eq!(copy.endpoints(), Some(balance.endpoints()));

    let clone = balance.clone();
    drop(balance);
    assert_eq!(
        handle.status().map(|s| s.endpoints),
        Some(2),
        "a clone is left"
    );
    drop(clone);
    assert_eq!(handle.status(), None);
    assert_eq!(handle.endpoints(), None);
    assert_eq!(handle.name(), Some("orders"));

    let unnamed = balancer(1, BalanceConfig::default()).0.handle();
    assert_eq!(unnamed.name(), None);
}
