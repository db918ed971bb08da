//! Load-aware picking: PeakEWMA avoids a slow endpoint, load counts until the body ends, weights
//! scale the share, round robin, and clones from several tasks.

mod support;

use std::time::Duration;

use http::Request;
use mesh_balance::{BalanceConfig, LoadStrategy};
use mesh_core::Locality;
use support::*;
use tokio_test::{assert_ready_ok, task};
use tower::ServiceExt;
use tower_service::Service;

#[tokio::test(start_paused = true)]
async fn a_twenty_times_slower_endpoint_gets_under_two_percent() {
    let (balance, _d, fakes) = balancer(10, BalanceConfig::default().seed(1));
    for f in &fakes {
        f.set_latency(Duration::from_millis(30));
    }
    fakes[3].set_latency(Duration::from_millis(600));
    // Eight tasks, each with its own clone, 250 requests each.
    send_concurrently(&balance, 8, 250).await;
    let hits = hits(&fakes);
    let total: usize = hits.iter().sum();
    assert_eq!(total, 2000);
    let slow_share = hits[3] as f64 / total as f64;
    eprintln!("hits {hits:?}, slow share {slow_share:.4}");
    assert!(
        slow_share < 0.02,
        "slow endpoint got {slow_share:.3} ({hits:?})"
    );
    // Every fast endpoint took part.
    assert!(
        hits.iter().enumerate().all(|(i, &h)| i == 3 || h > 100),
        "{hits:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn load_counts_until_the_body_ends() {
    let config = BalanceConfig::default()
        .seed(2)
        .load(LoadStrategy::PendingRequests);
    let (mut balance, _d, fakes) = balancer(2, config);
    // The first response is held, body unread: its endpoint stays loaded.
    let held = balance
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let first = hits(&fakes);
    for _ in 0..5 {
        let res = balance
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        drop(res);
    }
    let after = hits(&fakes);
    let busy = if first[0] == 1 { 0 } else { 1 };
    assert_eq!(
        after[busy], 1,
        "the endpoint with an open body got more: {after:?}"
    );
    assert_eq!(after[1 - busy], 5);
    // Once the body is gone, both are equal again and the next request may go either way.
    drop(held);
    let mut picks = [0; 2];
    for _ in 0..20 {
        let before = hits(&fakes);
        send(&mut balance).await.unwrap();
        let now = hits(&fakes);
        picks[if now[0] > before[0] { 0 } else { 1 }] += 1;
    }
    assert!(picks[busy] > 0, "{picks:?}");
}

#[tokio::test(start_paused = true)]
async fn weights_scale_the_share() {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let weights = [1, 1, 2, 4];
    let fakes: Vec<_> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let (ep, b) = fleet.endpoint(i, w, Locality::default());
            handle.insert(&ep);
            b
        })
        .collect();
    let config = BalanceConfig::default()
        .seed(3)
        .load(LoadStrategy::PendingRequests);
    let balance = mesh_balance::Balance::new(discover, fleet.make(), config).unwrap();
    send_concurrently(&balance, 16, 100).await;
    let hits = hits(&fakes);
    eprintln!("weights {weights:?} hits {hits:?}");
    assert!(
        hits[3] > hits[2] && hits[2] > hits[1] && hits[2] > hits[0],
        "{hits:?}"
    );
    let ratio = hits[3] as f64 / ((hits[0] + hits[1]) as f64 / 2.0);
    assert!(
        (2.0..8.0).contains(&ratio),
        "weight 4 vs 1: {ratio:.2} ({hits:?})"
    );
}

#[tokio::test(start_paused = true)]
async fn round_robin_takes_turns() {
    let config = BalanceConfig::default()
        .seed(4)
        .load(LoadStrategy::RoundRobin);
    let (mut balance, _d, fakes) = balancer(3, config);
    send_many(&mut balance, 30).await;
    assert_eq!(hits(&fakes), vec![10, 10, 10]);
}

#[tokio::test(start_paused = true)]
async fn a_clone_starts_without_a_reservation_and_a_dropped_one_leaks_nothing() {
    let (mut balance, _d, fakes) = balancer(1, BalanceConfig::default().seed(5));
    let mut clone = balance.clone();
    let mut t = task::spawn(());
    assert_ready_ok!(t.enter(|cx, _| clone.poll_ready(cx)));
    drop(clone);
    // The original still has to reserve for itself, and can.
    send_many(&mut balance, 3).await;
    assert_eq!(fakes[0].hits(), 3);
    let status = balance.status();
    assert_eq!((status.endpoints, status.ready, status.ejected), (1, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_on_several_threads_share_one_set() {
    let (balance, _d, fakes) = balancer(5, BalanceConfig::default().seed(6));
    for f in &fakes {
        f.set_latency(Duration::ZERO);
    }
    send_concurrently(&balance, 8, 200).await;
    let hits = hits(&fakes);
    assert_eq!(hits.iter().sum::<usize>(), 1600);
    assert!(hits.iter().all(|&h| h > 0), "{hits:?}");
    let status = balance.status();
    assert_eq!((status.endpoints, status.ready, status.ejected), (5, 5, 0));
}
