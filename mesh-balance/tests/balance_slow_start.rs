//! Slow start in the balancer: a newly discovered endpoint's share of traffic ramps up over the
//! window instead of jumping to its full share, and ramps up again when it comes back after
//! being out of rotation (ejected, or failing its health checks).

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use mesh_balance::health::{HealthCheck, HealthCheckConfig, HealthChecked};
use mesh_balance::slow_start::SlowStart;
use mesh_balance::{Balance, BalanceConfig, LoadStrategy};
use mesh_core::{Body, Endpoint, Locality};
use support::*;
use tower::ServiceExt;

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

/// Pending requests as the load (the share then follows the weights directly), a 60 s ramp.
fn ramped(seed: u64) -> BalanceConfig {
    BalanceConfig::default()
        .seed(seed)
        .load(LoadStrategy::PendingRequests)
        .slow_start(SlowStart::new(Duration::from_secs(60)))
}

/// `b`'s share of 16 × 25 concurrent requests through `balance` (one request takes 10 ms).
async fn share_of(balance: &TestBalance, fakes: &[Arc<Behaviour>], b: usize) -> f64 {
    let before = hits(fakes);
    send_concurrently(balance, 16, 25).await;
    let after = hits(fakes);
    let total: usize = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    (after[b] - before[b]) as f64 / total as f64
}

#[tokio::test(start_paused = true)]
async fn the_ramp_restarts_when_an_endpoint_returns_from_ejection() {
    let (mut balance, _d, fakes) = balancer(2, ramped(41));
    send(&mut balance).await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await; // both ramps are over
    assert!((0.42..0.58).contains(&share_of(&balance, &fakes, 1).await));

    fakes[1].set_status(503);
    for _ in 0..100 {
        if balance.status().ejected == 1 {
            break;
        }
        let _ = send(&mut balance).await;
    }
    assert_eq!(balance.status().ejected, 1);
    // Healed: its probe is due after 30 s ± 10 % and brings it back, cold.
    fakes[1].set_status(200);
    tokio::time::sleep(Duration::from_secs(34)).await;
    send(&mut balance).await.unwrap(); // the probe (it wins any pair it is in)
    assert_eq!(balance.status().ejected, 0);
    let back = share_of(&balance, &fakes, 1).await;
    assert!(back < 0.2, "back from ejection, at the floor again: {back}");
    tokio::time::sleep(Duration::from_secs(61)).await;
    let warm = share_of(&balance, &fakes, 1).await;
    assert!((0.42..0.58).contains(&warm), "ramped up again: {warm}");
}

#[tokio::test(start_paused = true)]
async fn a_short_unready_spell_does_not_restart_the_ramp() {
    let (mut balance, _d, fakes) = balancer(2, ramped(42));
    send(&mut balance).await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    // Not ready for 2 s (a full connection pool, say): shorter than `cold_after` (10 s).
    fakes[1].set_ready(false);
    send_many(&mut balance, 10).await;
    assert_eq!(balance.status().ready, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    fakes[1].set_ready(true);
    send(&mut balance).await.unwrap();
    assert_eq!(balance.status().ready, 2);
    let share = share_of(&balance, &fakes, 1).await;
    assert!((0.42..0.58).contains(&share), "still warm: {share}");
}

type MakeChecked = Box<dyn Fn(&Endpoint) -> HealthChecked<Fake> + Send + Sync>;
type Checked = Balance<Discovery, MakeChecked>;

/// A balancer over two endpoints whose services are gated by active health checks (every 2 s,
/// 3 failures to turn unhealthy, 2 passes to turn healthy); the flags say whether each
/// endpoint's health path passes.
fn health_checked(
    config: BalanceConfig,
) -> (
    Checked,
    DiscoveryHandle,
    Vec<Arc<Behaviour>>,
    Vec<Arc<AtomicBool>>,
) {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let (mut fakes, mut passes) = (Vec::new(), Vec::new());
    let mut by_port = std::collections::HashMap::new();
    for n in 0..2 {
        let (ep, b) = fleet.endpoint(n, 1, Locality::default());
        handle.insert(&ep);
        let pass = Arc::new(AtomicBool::new(true));
        by_port.insert(ep.addr().port(), pass.clone());
        fakes.push(b);
        passes.push(pass);
    }
    let checks = HealthCheckConfig::new(HealthCheck::http("/healthz".parse().unwrap()))
        .interval(Duration::from_secs(2))
        .jitter(0.0)
        .seed(3);
    let make = fleet.make();
    let make: MakeChecked = Box::new(move |ep: &Endpoint| {
        let pass = by_port[&ep.addr().port()].clone();
        let probe = tower::service_fn(move |_: Request<Body>| {
            let status = if pass.load(Ordering::SeqCst) {
                200
            } else {
                503
            };
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            async move { Ok::<_, Infallible>(response) }
        });
        HealthChecked::with_probe(make(ep), probe, &checks).unwrap()
    });
    let balance = Balance::new(discover, make, config).unwrap();
    (balance, handle, fakes, passes)
}

/// `b`'s share of 400 requests, 16 at a time.
async fn checked_share(balance: &Checked, fakes: &[Arc<Behaviour>], b: usize) -> f64 {
    let before = hits(fakes);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let clone = balance.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    let response = clone.clone().oneshot(Request::new(())).await.unwrap();
                    http_body_util::BodyExt::collect(response.into_body())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let after = hits(fakes);
    let total: usize = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    (after[b] - before[b]) as f64 / total as f64
}

#[tokio::test(start_paused = true)]
async fn the_ramp_restarts_when_health_checks_pass_again() {
    let (balance, _d, fakes, passes) = health_checked(ramped(43));
    checked_share(&balance, &fakes, 1).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    let warm = checked_share(&balance, &fakes, 1).await;
    assert!((0.42..0.58).contains(&warm), "{warm}");

    // Its health path fails for 30 s: unhealthy after three failed checks, so not ready.
    passes[1].store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let out = checked_share(&balance, &fakes, 1).await;
    assert_eq!(out, 0.0, "failing its health checks, out of rotation");
    tokio::time::sleep(Duration::from_secs(20)).await;
    // Passing again: healthy after two checks, and back, cold.
    passes[1].store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let back = checked_share(&balance, &fakes, 1).await;
    assert!(
        back > 0.0 && back < 0.2,
        "healthy again, at the floor: {back}"
    );
    tokio::time::sleep(Duration::from_secs(61)).await;
    let warm = checked_share(&balance, &fakes, 1).await;
    assert!((0.42..0.58).contains(&warm), "ramped up again: {warm}");
}
