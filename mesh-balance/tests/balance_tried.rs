//! A retried request avoids the endpoints it already tried, when another one is ready; otherwise
//! the balancer's own pick stands. Two ways: mesh-core's `AvoidTried` marker (what mesh-retry's
//! layer puts on its retries, all sent through one balancer instance, which remembers where the
//! request's earlier attempts went), and a shared `TriedEndpoints` record in the request (every
//! attempt records the endpoint that took it).

mod support;

use std::sync::Arc;

use http::Request;
use mesh_balance::{BalanceConfig, LocalityConfig};
use mesh_core::attempts::{AvoidTried, TriedEndpoints};
use mesh_core::{EndpointKey, Locality};
use support::*;
use tower::ServiceExt;
use tower_service::Service;

/// One request carrying `tried` (a clone: the caller keeps the shared record).
async fn send_tried(balance: &mut TestBalance, tried: &TriedEndpoints) {
    let mut req = Request::new(());
    req.extensions_mut().insert(tried.clone());
    balance.ready().await.unwrap().call(req).await.unwrap();
}

/// Which endpoint (by index) took a request sent with `marked` on `balance`, an instance a retry
/// layer would own for one request.
async fn send_marked(balance: &mut TestBalance, fakes: &[Arc<Behaviour>], marked: bool) -> usize {
    let before = hits(fakes);
    let mut req = Request::new(());
    if marked {
        req.extensions_mut().insert(AvoidTried);
    }
    balance.ready().await.unwrap().call(req).await.unwrap();
    let after = hits(fakes);
    (0..fakes.len())
        .find(|&i| after[i] != before[i])
        .expect("one endpoint took it")
}

#[tokio::test(start_paused = true)]
async fn marked_retries_on_one_instance_avoid_where_its_request_went() {
    let (balance, _d, fakes) = balancer(3, BalanceConfig::default().seed(13));
    // What the retry layer does: every attempt of a request through one instance. The instance
    // is kept across requests here: an unmarked request must start a new list (were the list
    // kept, from the second request on every endpoint would count as tried).
    let mut attempt = balance.clone();
    for _ in 0..30 {
        let first = send_marked(&mut attempt, &fakes, false).await;
        let second = send_marked(&mut attempt, &fakes, true).await;
        let third = send_marked(&mut attempt, &fakes, true).await;
        assert_ne!(first, second);
        assert!(
            third != first && third != second,
            "{first} {second} {third}"
        );
        // Every endpoint tried: a fourth attempt takes the balancer's own pick, not an error.
        send_marked(&mut attempt, &fakes, true).await;
    }
}

fn key(n: usize) -> EndpointKey {
    EndpointKey(addr(n))
}

#[tokio::test(start_paused = true)]
async fn a_retry_goes_to_an_endpoint_the_request_has_not_tried() {
    let (mut balance, _d, fakes) = balancer(3, BalanceConfig::default().seed(11));
    for _ in 0..50 {
        let before = hits(&fakes);
        let tried = TriedEndpoints::new();
        tried.record(key(0));
        tried.record(key(1));
        send_tried(&mut balance, &tried).await;
        let after = hits(&fakes);
        // Only endpoint 2 is untried: it takes every such request, and is recorded.
        assert_eq!(after[2], before[2] + 1, "{before:?} → {after:?}");
        assert!(tried.contains(&key(2)));
        assert_eq!(tried.len(), 3);
    }
    // A first attempt (nothing tried) records where it went.
    let tried = TriedEndpoints::new();
    send_tried(&mut balance, &tried).await;
    assert_eq!(tried.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn with_every_endpoint_tried_or_unready_the_pick_stands() {
    let (mut balance, _d, fakes) = balancer(2, BalanceConfig::default().seed(12));
    // Endpoint 1 is not ready: a request that tried 0 still goes to 0 rather than waiting.
    fakes[1].set_ready(false);
    let tried = TriedEndpoints::new();
    tried.record(key(0));
    send_tried(&mut balance, &tried).await;
    assert_eq!(hits(&fakes), vec![1, 0]);
    // Both tried: the balancer's own pick.
    fakes[1].set_ready(true);
    let tried = TriedEndpoints::new();
    tried.record(key(0));
    tried.record(key(1));
    for _ in 0..10 {
        send_tried(&mut balance, &tried).await;
    }
    assert_eq!(hits(&fakes).iter().sum::<usize>(), 11);
}

#[tokio::test(start_paused = true)]
async fn an_untried_endpoint_in_another_locality_beats_a_tried_local_one() {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let here = Locality::new("r1", "z1", "");
    let there = Locality::new("r1", "z2", "");
    let (local, _b0) = fleet.endpoint(0, 1, here.clone());
    let (remote, b1) = fleet.endpoint(1, 1, there);
    handle.insert(&local);
    handle.insert(&remote);
    let config = BalanceConfig::default()
        .seed(13)
        .locality(LocalityConfig::new(here.clone()));
    let mut balance = mesh_balance::Balance::new(discover, fleet.make(), config).unwrap();
    let tried = TriedEndpoints::new();
    tried.record(key(0));
    send_tried(&mut balance, &tried).await;
    assert_eq!(b1.hits(), 1, "the retry stayed on the tried local endpoint");

    // With strict locality, the request stays in its tier: the tried local endpoint takes it.
    let (handle, discover) = discovery();
    handle.insert(&local);
    handle.insert(&remote);
    let config = BalanceConfig::default()
        .seed(14)
        .locality(LocalityConfig::new(here).strict(true));
    let mut balance = mesh_balance::Balance::new(discover, fleet.make(), config).unwrap();
    let tried = TriedEndpoints::new();
    tried.record(key(0));
    send_tried(&mut balance, &tried).await;
    assert_eq!(b1.hits(), 1, "strict locality spilled a retry");
}
