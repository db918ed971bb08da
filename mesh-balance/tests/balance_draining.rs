//! Draining endpoints: kept in the set with their state, finishing what they hold, but given no
//! new request (not in panic mode, not by the ring); back in rotation, state intact, when
//! discovery clears the mark.
#![allow(clippy::needless_range_loop)] // users are numbered keys as well as indexes

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use http::{HeaderName, Request};
use http_body_util::BodyExt;
use mesh_balance::hash::{HashConfig, HashKey};
use mesh_balance::{Balance, BalanceConfig, OutlierConfig};
use mesh_core::error::NoEndpoints;
use mesh_core::{Endpoint, Locality};
use mesh_test::TestMetrics;
use support::*;
use tower::ServiceExt;
use tower_service::Service;

fn draining(ep: &Endpoint, draining: bool) -> Endpoint {
    ep.to_builder().draining(draining).build().unwrap()
}

/// `n` endpoints through a discovery the test keeps; their descriptions and behaviours.
fn set(
    n: usize,
    config: BalanceConfig,
) -> (
    TestBalance,
    DiscoveryHandle,
    Vec<Endpoint>,
    Vec<Arc<Behaviour>>,
) {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let (eps, fakes): (Vec<_>, Vec<_>) = (0..n)
        .map(|i| fleet.endpoint(i, 1, Locality::default()))
        .unzip();
    for ep in &eps {
        handle.insert(ep);
    }
    let balance = Balance::new(discover, fleet.make(), config).unwrap();
    (balance, handle, eps, fakes)
}

fn status_of(balance: &TestBalance, n: usize) -> mesh_balance::EndpointStatus {
    let all = balance.endpoints();
    all.into_iter().find(|s| s.addr == addr(n)).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_draining_endpoint_finishes_its_requests_and_takes_no_new_ones() {
    let (mut balance, discovery, eps, fakes) = set(1, BalanceConfig::default().seed(70));
    fakes[0].set_latency(Duration::from_secs(1));
    // A request in flight on endpoint 0, the only one.
    let in_flight = balance.ready().await.unwrap().call(Request::new(()));
    assert_eq!(status_of(&balance, 0).in_flight, 1);

    discovery.insert(&draining(&eps[0], true));
    // The next poll applies the mark: with nothing else in the set, nothing is ready.
    let mut other = balance.clone();
    let mut t = tokio_test::task::spawn(());
    tokio_test::assert_pending!(t.enter(|cx, _| other.poll_ready(cx)));
    let status = balance.status();
    assert_eq!((status.endpoints, status.draining), (1, 1));
    let line = status_of(&balance, 0);
    assert!(line.draining && line.ready, "{line:?}");
    assert_eq!(line.in_flight, 1);

    // The request in flight finishes normally, on the service it was sent with.
    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    assert_eq!(status_of(&balance, 0).in_flight, 0);
    assert_eq!(
        fakes[0].built.load(SeqCst),
        1,
        "the service was not rebuilt"
    );
}

#[tokio::test(start_paused = true)]
async fn only_draining_endpoints_left_fails_fast_with_no_endpoints() {
    let config = BalanceConfig::default()
        .seed(71)
        .fail_fast_after(Duration::from_millis(500));
    let (mut balance, discovery, eps, fakes) = set(2, config);
    send_many(&mut balance, 10).await;
    for ep in &eps {
        discovery.insert(&draining(ep, true));
    }
    let started = tokio::time::Instant::now();
    let error = send(&mut balance).await.unwrap_err();
    assert!(error.is::<NoEndpoints>(), "{error}");
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    assert_eq!(hits(&fakes).iter().sum::<usize>(), 10);
}

#[tokio::test(start_paused = true)]
async fn undraining_puts_it_back_with_its_state() {
    let (mut balance, discovery, eps, fakes) = set(3, BalanceConfig::default().seed(72));
    fakes[0].set_latency(Duration::from_millis(40));
    send_many(&mut balance, 60).await;
    let before = status_of(&balance, 0);
    discovery.insert(&draining(&eps[0], true));
    let hits0 = fakes[0].hits();
    send_many(&mut balance, 60).await;
    assert_eq!(fakes[0].hits(), hits0, "no new picks while draining");
    assert_eq!(balance.status().draining, 1);

    discovery.insert(&draining(&eps[0], false));
    send(&mut balance).await.unwrap(); // applies the change
    let after = status_of(&balance, 0);
    assert!(!after.draining && after.ready);
    assert_eq!(balance.status().draining, 0);
    assert_eq!(fakes[0].built.load(SeqCst), 1, "same service, not rebuilt");
    // The RTT estimate measured before draining is still there (decayed by the time passed,
    // as for any endpoint that got no traffic), not the 30 ms a new endpoint starts with.
    assert!(
        after.rtt > Duration::from_millis(30) && after.rtt <= before.rtt,
        "{before:?} {after:?}"
    );
    // In rotation again: with the others not ready, it takes every request.
    fakes[1].set_ready(false);
    fakes[2].set_ready(false);
    let hits0 = fakes[0].hits();
    send_many(&mut balance, 20).await;
    assert_eq!(fakes[0].hits(), hits0 + 20, "back in rotation");
}

#[tokio::test(start_paused = true)]
async fn panic_mode_does_not_use_draining_endpoints() {
    let outliers = OutlierConfig::default().panic_threshold(1.0);
    let (mut balance, discovery, eps, fakes) =
        set(3, BalanceConfig::default().seed(73).outliers(outliers));
    discovery.insert(&draining(&eps[0], true));
    fakes[2].set_ready(false);
    send_many(&mut balance, 100).await;
    assert!(balance.status().panic, "1 of 2 healthy, below 100 %");
    assert_eq!(hits(&fakes), [0, 100, 0]);
}

#[tokio::test(start_paused = true)]
async fn draining_endpoints_leave_the_ring_and_come_back_to_it() {
    let config = BalanceConfig::default()
        .seed(74)
        .hash(HashConfig::new(HashKey::header(HeaderName::from_static(
            "x-user",
        ))));
    let (mut balance, discovery, eps, fakes) = set(4, config);
    let served = async |balance: &mut TestBalance, user: usize| {
        let before = hits(&fakes);
        let request = Request::builder()
            .header("x-user", user.to_string())
            .body(())
            .unwrap();
        let response = balance.ready().await.unwrap().call(request).await.unwrap();
        response.into_body().collect().await.unwrap();
        let after = hits(&fakes);
        (0..fakes.len()).find(|&i| after[i] > before[i]).unwrap()
    };
    // Warm up (the first hashed request builds the ring), then map 200 keys.
    served(&mut balance, 0).await;
    let mut home = Vec::new();
    for user in 0..200 {
        home.push(served(&mut balance, user).await);
    }
    let on_0: Vec<usize> = (0..200).filter(|&u| home[u] == 0).collect();
    assert!(on_0.len() > 20, "{}", on_0.len());

    discovery.insert(&draining(&eps[0], true));
    served(&mut balance, 0).await; // applies the change and rebuilds the ring
    for user in 0..200 {
        let now = served(&mut balance, user).await;
        if home[user] == 0 {
            assert_ne!(now, 0, "user {user} left the draining endpoint");
        } else {
            assert_eq!(now, home[user], "user {user} did not move");
        }
    }

    discovery.insert(&draining(&eps[0], false));
    served(&mut balance, 0).await;
    for user in 0..200 {
        assert_eq!(
            served(&mut balance, user).await,
            home[user],
            "user {user} is home again"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn draining_endpoints_have_their_own_metric_state() {
    let metrics = TestMetrics::new();
    let config = BalanceConfig::default().seed(75).meter(metrics.meter());
    let (mut balance, discovery, eps, _fakes) = set(3, config);
    discovery.insert(&draining(&eps[1], true));
    send_many(&mut balance, 5).await;
    let endpoints = metrics.get("mesh.balance.endpoints");
    let state = |s| endpoints.value_with(&[("mesh.balance.endpoint.state", s)]);
    assert_eq!((state("ready"), state("draining")), (2, 1));
}
