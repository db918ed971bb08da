//! Locality tiers: local while ≥ 70 % healthy, proportional spill-over, strict mode, failover
//! allow-list.

mod support;

use std::sync::Arc;

use mesh_balance::{Balance, BalanceConfig, LocalityConfig};
use mesh_core::Locality;
use support::*;

struct Zones {
    balance: TestBalance,
    local: Vec<Arc<Behaviour>>,
    remote: Vec<Arc<Behaviour>>,
    _discovery: DiscoveryHandle,
}

/// 10 endpoints in the local zone, 10 in another zone of the same region; `down` local ones not
/// ready.
fn zones(down: usize, locality: LocalityConfig, seed: u64) -> Zones {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let add = |n: usize, zone: &str| {
        let (ep, b) = fleet.endpoint(n, 1, Locality::new("r1", zone, ""));
        handle.insert(&ep);
        b
    };
    let local: Vec<_> = (0..10).map(|n| add(n, "z1")).collect();
    let remote: Vec<_> = (10..20).map(|n| add(n, "z2")).collect();
    for b in &local[..down] {
        b.set_ready(false);
    }
    let config = BalanceConfig::default().seed(seed).locality(locality);
    let balance = Balance::new(discover, fleet.make(), config).unwrap();
    Zones {
        balance,
        local,
        remote,
        _discovery: handle,
    }
}

fn local_config() -> LocalityConfig {
    LocalityConfig::new(Locality::new("r1", "z1", ""))
}

fn total(fakes: &[Arc<Behaviour>]) -> usize {
    fakes.iter().map(|b| b.hits()).sum()
}

#[tokio::test(start_paused = true)]
async fn traffic_stays_local_until_more_than_30_percent_fail() {
    for down in 0..=3 {
        let mut z = zones(down, local_config(), 20 + down as u64);
        send_many(&mut z.balance, 300).await;
        assert_eq!(total(&z.remote), 0, "{down} of 10 down: stays local");
        assert_eq!(total(&z.local), 300);
    }
}

#[tokio::test(start_paused = true)]
async fn below_the_threshold_traffic_spills_in_proportion() {
    // 4 of 10 down: the zone keeps 0.6 / 0.7 ≈ 85.7 %, the rest spills to the next zone.
    let mut z = zones(4, local_config(), 30);
    send_many(&mut z.balance, 2000).await;
    let remote = total(&z.remote) as f64 / 2000.0;
    assert!(
        (0.11..0.18).contains(&remote),
        "spill {remote:.3}, expected ≈ 0.143"
    );
    // 7 of 10 down: 0.3 / 0.7 ≈ 42.9 % stays.
    let mut z = zones(7, local_config(), 31);
    send_many(&mut z.balance, 2000).await;
    let local = total(&z.local) as f64 / 2000.0;
    assert!(
        (0.38..0.48).contains(&local),
        "local {local:.3}, expected ≈ 0.429"
    );
}

#[tokio::test(start_paused = true)]
async fn strict_mode_never_leaves_the_zone() {
    let mut z = zones(8, local_config().strict(true), 40);
    send_many(&mut z.balance, 300).await;
    assert_eq!(total(&z.remote), 0);
    assert_eq!(total(&z.local), 300);
}

#[tokio::test(start_paused = true)]
async fn failover_goes_only_to_allowed_regions() {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let add = |n: usize, region: &str| {
        let (ep, b) = fleet.endpoint(n, 1, Locality::new(region, "z", ""));
        handle.insert(&ep);
        b
    };
    let local: Vec<_> = (0..2).map(|n| add(n, "r1")).collect();
    let allowed: Vec<_> = (2..4).map(|n| add(n, "r2")).collect();
    let other: Vec<_> = (4..6).map(|n| add(n, "r3")).collect();
    for b in &local {
        b.set_ready(false);
    }
    let locality = LocalityConfig::new(Locality::new("r1", "z", "")).failover_regions(["r2"]);
    let config = BalanceConfig::default().seed(50).locality(locality);
    let mut balance = Balance::new(discover, fleet.make(), config).unwrap();
    send_many(&mut balance, 200).await;
    assert_eq!(total(&allowed), 200);
    assert_eq!(total(&other), 0);
    // The local region comes back: all traffic returns to it.
    for b in &local {
        b.set_ready(true);
    }
    send_many(&mut balance, 100).await;
    assert_eq!(total(&local), 100);
}
