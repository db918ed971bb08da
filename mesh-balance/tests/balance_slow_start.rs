//! Slow start in the balancer: a newly discovered endpoint's share of traffic ramps up over the
//! window instead of jumping to its full share.

mod support;

use std::time::Duration;

use mesh_balance::slow_start::SlowStart;
use mesh_balance::{Balance, BalanceConfig, LoadStrategy};
use mesh_core::Locality;
use support::*;

/// A warm endpoint, then a new one inserted; returns the new one's share of the traffic sent at
/// each of `offsets` after its insertion (16 concurrent callers, 10 ms per request).
async fn shares(slow_start: SlowStart, offsets: &[u64]) -> Vec<f64> {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let (warm, old) = fleet.endpoint(0, 1, Locality::default());
    handle.insert(&warm);
    // Pending requests as the load: the share then follows the weights directly.
    let config = BalanceConfig::default()
        .seed(40)
        .load(LoadStrategy::PendingRequests)
        .slow_start(slow_start);
    let mut balance = Balance::new(discover, fleet.make(), config).unwrap();
    send(&mut balance).await.unwrap();
    // The first endpoint's own ramp is over.
    tokio::time::sleep(Duration::from_secs(120)).await;

    let (fresh, new) = fleet.endpoint(1, 1, Locality::default());
    handle.insert(&fresh);
    send(&mut balance).await.unwrap(); // applies the insertion: the ramp starts now
    let start = tokio::time::Instant::now();
    let mut shares = Vec::new();
    for &offset in offsets {
        tokio::time::sleep_until(start + Duration::from_secs(offset)).await;
        let before = (old.hits(), new.hits());
        send_concurrently(&balance, 16, 25).await;
        let (o, n) = (old.hits() - before.0, new.hits() - before.1);
        shares.push(n as f64 / (o + n) as f64);
    }
    shares
}

#[tokio::test(start_paused = true)]
async fn a_new_endpoints_share_ramps_over_the_window() {
    let window = SlowStart::new(Duration::from_secs(60));
    let ramp = shares(window, &[1, 30, 61]).await;
    eprintln!("new endpoint's share at 1 s, 30 s, 61 s: {ramp:?}");
    assert!(ramp[0] < 0.12, "just added, at the 10 % floor: {ramp:?}");
    assert!(ramp[0] < ramp[1] && ramp[1] < ramp[2], "rising: {ramp:?}");
    assert!(
        (0.2..0.42).contains(&ramp[1]),
        "half-way, half the weight: {ramp:?}"
    );
    assert!(
        (0.42..0.58).contains(&ramp[2]),
        "window over: an equal share: {ramp:?}"
    );

    // Without slow start, the newcomer takes its full share at once.
    let off = shares(SlowStart::default(), &[1]).await;
    assert!((0.42..0.58).contains(&off[0]), "{off:?}");
}

#[test]
fn bad_slow_start_settings_are_named() {
    let config = BalanceConfig::default().slow_start(SlowStart::default().aggression(0.0));
    let error = config.validate().unwrap_err();
    assert_eq!(error.key(), "slow_start.aggression");
    let config =
        BalanceConfig::default().slow_start(SlowStart::default().min_weight_percent(120.0));
    assert_eq!(
        config.validate().unwrap_err().key(),
        "slow_start.min_weight_percent"
    );
}
