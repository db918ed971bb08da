//! Fail fast with `NoEndpoints`, the bounded wait queue, wake-ups, and discovery removal with
//! requests in flight.

mod support;

use std::time::Duration;

use http::Request;
use mesh_balance::BalanceConfig;
use mesh_core::Locality;
use mesh_core::error::NoEndpoints;
use support::*;
use tokio_test::{assert_pending, assert_ready, assert_ready_ok, task};
use tower_service::Service;

fn is_no_endpoints(result: Result<(), mesh_core::BoxError>) -> bool {
    matches!(result, Err(e) if e.is::<NoEndpoints>())
}

#[tokio::test(start_paused = true)]
async fn fails_with_no_endpoints_after_the_configured_time() {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let config = BalanceConfig::default()
        .seed(60)
        .fail_fast_after(Duration::from_millis(500));
    let mut balance = mesh_balance::Balance::new(discover, fleet.make(), config).unwrap();
    let mut t = task::spawn(());
    assert_pending!(t.enter(|cx, _| balance.poll_ready(cx)));
    tokio::time::advance(Duration::from_millis(499)).await;
    assert_pending!(t.enter(|cx, _| balance.poll_ready(cx)));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(t.is_woken(), "the fail-fast timer wakes the waiting caller");
    assert!(is_no_endpoints(assert_ready!(
        t.enter(|cx, _| balance.poll_ready(cx))
    )));
    // Still nothing: the next caller fails at once, without waiting again.
    let mut other = balance.clone();
    let mut t2 = task::spawn(());
    assert!(is_no_endpoints(assert_ready!(
        t2.enter(|cx, _| other.poll_ready(cx))
    )));

    // An endpoint arrives: requests flow again.
    let (ep, b) = fleet.endpoint(0, 1, Locality::default());
    handle.insert(&ep);
    assert_ready_ok!(t2.enter(|cx, _| other.poll_ready(cx)));
    let response = other.call(Request::new(())).await.unwrap();
    assert_eq!((response.status().as_u16(), b.hits()), (200, 1));
}

#[tokio::test(start_paused = true)]
async fn the_default_is_three_seconds_and_readiness_ends_the_wait() {
    let (mut balance, _d, fakes) = balancer(1, BalanceConfig::default().seed(62));
    fakes[0].set_ready(false);
    let mut t = task::spawn(());
    assert_pending!(t.enter(|cx, _| balance.poll_ready(cx)));
    tokio::time::advance(Duration::from_millis(2999)).await;
    assert_pending!(t.enter(|cx, _| balance.poll_ready(cx)));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(is_no_endpoints(assert_ready!(
        t.enter(|cx, _| balance.poll_ready(cx))
    )));

    // A waiting caller is woken when the endpoint becomes ready.
    let mut waiting = balance.clone();
    let mut t2 = task::spawn(());
    assert!(is_no_endpoints(assert_ready!(
        t2.enter(|cx, _| waiting.poll_ready(cx))
    )));
    fakes[0].set_ready(true);
    assert_ready_ok!(t2.enter(|cx, _| waiting.poll_ready(cx)));
}

#[tokio::test(start_paused = true)]
async fn waiters_are_woken_when_an_endpoint_becomes_ready() {
    let (balance, _d, fakes) = balancer(1, BalanceConfig::default().seed(63));
    fakes[0].set_ready(false);
    let (mut a, mut b) = (balance.clone(), balance.clone());
    let (mut ta, mut tb) = (task::spawn(()), task::spawn(()));
    assert_pending!(ta.enter(|cx, _| a.poll_ready(cx)));
    assert_pending!(tb.enter(|cx, _| b.poll_ready(cx)));
    fakes[0].set_ready(true);
    // Both were woken, though the endpoint registered only one waker.
    assert!(ta.is_woken() && tb.is_woken());
    assert_ready_ok!(tb.enter(|cx, _| b.poll_ready(cx)));
    assert_ready_ok!(ta.enter(|cx, _| a.poll_ready(cx)));
}

#[tokio::test(start_paused = true)]
async fn the_wait_queue_is_bounded() {
    let config = BalanceConfig::default().seed(64).max_waiters(1);
    let (balance, _d, fakes) = balancer(1, config);
    fakes[0].set_ready(false);
    let (mut a, mut b) = (balance.clone(), balance.clone());
    let (mut ta, mut tb) = (task::spawn(()), task::spawn(()));
    assert_pending!(ta.enter(|cx, _| a.poll_ready(cx)));
    assert!(is_no_endpoints(assert_ready!(
        tb.enter(|cx, _| b.poll_ready(cx))
    )));
    // A waiter that goes away frees its place.
    drop(a);
    assert_pending!(tb.enter(|cx, _| b.poll_ready(cx)));
}

#[tokio::test(start_paused = true)]
async fn removal_does_not_drop_requests_in_flight() {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let (first, slow) = fleet.endpoint(0, 1, Locality::default());
    slow.set_latency(Duration::from_secs(1));
    handle.insert(&first);
    let config = BalanceConfig::default().seed(65);
    let mut balance = mesh_balance::Balance::new(discover, fleet.make(), config).unwrap();
    let mut t = task::spawn(());
    assert_ready_ok!(t.enter(|cx, _| balance.poll_ready(cx)));
    let mut in_flight = task::spawn(balance.call(Request::new(())));
    assert_pending!(in_flight.poll());

    // Removed and replaced while the request is in flight.
    let (second, fast) = fleet.endpoint(1, 1, Locality::default());
    handle.remove(&first);
    handle.insert(&second);
    send_many(&mut balance, 5).await;
    assert_eq!((slow.hits(), fast.hits()), (1, 5));
    assert_eq!(balance.status().endpoints, 1);

    tokio::time::advance(Duration::from_secs(1)).await;
    let response =
        assert_ready!(in_flight.poll()).expect("the removed endpoint finished its request");
    assert_eq!(response.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_failed_readiness_check_rebuilds_the_service_and_keeps_the_endpoint() {
    let (mut balance, _d, fakes) = balancer(2, BalanceConfig::default().seed(66));
    send_many(&mut balance, 10).await;
    fakes[0]
        .fail_ready
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let before = fakes[0].hits();
    // Requests keep succeeding; the broken service is replaced, not the endpoint dropped.
    send_many(&mut balance, 40).await;
    assert_eq!(balance.status().endpoints, 2);
    assert_eq!(fakes[0].built.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(
        fakes[0].hits() > before,
        "the rebuilt endpoint serves again"
    );
}

#[test]
fn the_balancer_fits_under_axum() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    fn sendable<T: Send + 'static>() {}
    shareable::<TestBalance>();
    sendable::<<TestBalance as Service<Request<()>>>::Future>();
    sendable::<<TestBalance as Service<Request<()>>>::Response>();
}
