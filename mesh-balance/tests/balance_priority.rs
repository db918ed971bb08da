//! xDS priorities as locality tiers: priority 0 keeps all traffic while its healthy share is at
//! least the threshold, spills in proportion below it, fails over fully when none of it is
//! healthy; proximity tiers are unchanged.

mod support;

use std::sync::Arc;
use std::time::Duration;

use mesh_balance::{Balance, BalanceConfig, LocalityConfig, OutlierConfig, TierSource};
use mesh_core::Locality;
use support::*;

struct Priorities {
    balance: TestBalance,
    p0: Vec<Arc<Behaviour>>,
    p1: Vec<Arc<Behaviour>>,
    _discovery: DiscoveryHandle,
}

/// Envoy's default: an overprovisioning factor of 1.4.
fn by_priority() -> LocalityConfig {
    LocalityConfig::default()
        .tiers(TierSource::Priority)
        .overprovisioning_factor(1.4)
}

/// 10 endpoints at priority 0, 10 at priority 1; `down` of priority 0 not ready.
fn priorities(down: usize, config: BalanceConfig) -> Priorities {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let add = |n: usize, priority: u32| {
        let (ep, b) = fleet.endpoint(n, 1, Locality::default());
        handle.insert(&ep.to_builder().priority(priority).build().unwrap());
        b
    };
    let p0: Vec<_> = (0..10).map(|n| add(n, 0)).collect();
    let p1: Vec<_> = (10..20).map(|n| add(n, 1)).collect();
    for b in &p0[..down] {
        b.set_ready(false);
    }
    let balance = Balance::new(discover, fleet.make(), config).unwrap();
    Priorities {
        balance,
        p0,
        p1,
        _discovery: handle,
    }
}

fn total(fakes: &[Arc<Behaviour>]) -> usize {
    fakes.iter().map(|b| b.hits()).sum()
}

#[test]
fn the_overprovisioning_factor_is_the_inverse_threshold() {
    let config = by_priority();
    assert!((config.get_threshold() - 1.0 / 1.4).abs() < 1e-12);
    assert_eq!(config.get_tiers(), TierSource::Priority);
    let too_low =
        BalanceConfig::default().locality(LocalityConfig::default().overprovisioning_factor(0.5));
    assert_eq!(too_low.validate().unwrap_err().key(), "locality.threshold");
}

#[tokio::test(start_paused = true)]
async fn priority_0_keeps_everything_while_healthy_enough() {
    // 8 of 10 healthy × 1.4 = 1.12 ≥ 1: all of it stays on priority 0.
    for down in 0..=2 {
        let config = BalanceConfig::default()
            .seed(40 + down as u64)
            .locality(by_priority());
        let mut p = priorities(down, config);
        send_many(&mut p.balance, 300).await;
        assert_eq!((total(&p.p0), total(&p.p1)), (300, 0), "{down} down");
    }
}

#[tokio::test(start_paused = true)]
async fn below_the_threshold_priority_1_takes_the_rest_in_proportion() {
    // 5 of 10 healthy: priority 0 keeps 0.5 × 1.4 = 70 %.
    let config = BalanceConfig::default().seed(45).locality(by_priority());
    let mut p = priorities(5, config);
    send_many(&mut p.balance, 2000).await;
    let spilled = total(&p.p1) as f64 / 2000.0;
    assert!(
        (0.26..0.34).contains(&spilled),
        "spill {spilled:.3}, expected 0.3"
    );
    // 9 of 10 down: 0.1 × 1.4 = 14 % stays.
    let config = BalanceConfig::default().seed(46).locality(by_priority());
    let mut p = priorities(9, config);
    send_many(&mut p.balance, 2000).await;
    let kept = total(&p.p0) as f64 / 2000.0;
    assert!(
        (0.11..0.17).contains(&kept),
        "kept {kept:.3}, expected 0.14"
    );
}

#[tokio::test(start_paused = true)]
async fn no_healthy_priority_0_fails_over_fully() {
    let config = BalanceConfig::default().seed(47).locality(by_priority());
    let mut p = priorities(10, config);
    send_many(&mut p.balance, 300).await;
    assert_eq!((total(&p.p0), total(&p.p1)), (0, 300));
}

#[tokio::test(start_paused = true)]
async fn an_ejected_priority_0_fails_over_fully() {
    let outliers = OutlierConfig::default()
        .consecutive_failures(1)
        .max_ejected_share(1.0);
    let config = BalanceConfig::default()
        .seed(48)
        .locality(by_priority())
        .outliers(outliers);
    let mut p = priorities(0, config);
    for b in &p.p0 {
        b.set_status(500);
    }
    for _ in 0..500 {
        if p.balance.status().ejected == 10 {
            break;
        }
        let _ = send(&mut p.balance).await;
    }
    assert_eq!(p.balance.status().ejected, 10);
    assert!(
        !p.balance.status().panic,
        "half the set is healthy: no panic"
    );
    let before = total(&p.p0);
    send_many(&mut p.balance, 300).await;
    assert_eq!(total(&p.p0), before, "ejected priority 0 gets nothing");
    // It comes back when its ejection ends and its probes succeed.
    for b in &p.p0 {
        b.set_status(200);
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    for _ in 0..500 {
        if p.balance.status().ejected == 0 {
            break;
        }
        send(&mut p.balance).await.unwrap();
    }
    let (p0, p1) = (total(&p.p0), total(&p.p1));
    send_many(&mut p.balance, 300).await;
    assert_eq!((total(&p.p0) - p0, total(&p.p1) - p1), (300, 0));
}

#[tokio::test(start_paused = true)]
async fn priorities_past_the_last_tier_share_it() {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    for (n, priority) in [0u32, 2, 3, 7].into_iter().enumerate() {
        let (ep, _) = fleet.endpoint(n, 1, Locality::default());
        handle.insert(&ep.to_builder().priority(priority).build().unwrap());
    }
    let config = BalanceConfig::default().seed(49).locality(by_priority());
    let mut balance = Balance::new(discover, fleet.make(), config).unwrap();
    send(&mut balance).await.unwrap();
    let mut tiers: Vec<_> = (balance.endpoints().into_iter())
        .map(|s| (s.priority, s.tier_index))
        .collect();
    tiers.sort();
    assert_eq!(
        tiers,
        [(0, Some(0)), (2, Some(2)), (3, Some(3)), (7, Some(3))]
    );
}

#[tokio::test(start_paused = true)]
async fn proximity_tiers_ignore_priorities() {
    // Local endpoints at priority 1, remote ones at priority 0: by proximity, local wins.
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let mut local = Vec::new();
    let mut remote = Vec::new();
    for n in 0..8 {
        let (zone, priority) = if n < 4 { ("z1", 1) } else { ("z2", 0) };
        let (ep, b) = fleet.endpoint(n, 1, Locality::new("r1", zone, ""));
        handle.insert(&ep.to_builder().priority(priority).build().unwrap());
        if n < 4 { local.push(b) } else { remote.push(b) }
    }
    let here = LocalityConfig::new(Locality::new("r1", "z1", ""));
    assert_eq!(here.get_tiers(), TierSource::Proximity, "the default");
    let config = BalanceConfig::default().seed(50).locality(here.clone());
    let mut balance = Balance::new(discover, fleet.make(), config).unwrap();
    send_many(&mut balance, 200).await;
    assert_eq!((total(&local), total(&remote)), (200, 0));

    // The same set by priority: everything moves to the priority-0 (remote) endpoints.
    let config = BalanceConfig::default().locality(here.tiers(TierSource::Priority));
    balance.reconfigure(config).unwrap();
    send_many(&mut balance, 200).await;
    assert_eq!((total(&local), total(&remote)), (200, 200));
}
