//! Live reconfiguration: every setting takes effect from the next pick on every clone, requests in
//! flight are untouched, endpoint state survives, and what cannot change is refused whole.

mod support;

use std::time::Duration;

use http::Request;
use mesh_balance::hash::{HashConfig, HashKey};
use mesh_balance::slow_start::SlowStart;
use mesh_balance::{
    Balance, BalanceConfig, LoadStrategy, LocalityConfig, OutlierConfig, OutlierStatus,
    PeakEwmaConfig,
};
use mesh_core::error::NoEndpoints;
use mesh_core::{Locality, Proximity};
use support::*;
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready, task};
use tower::ServiceExt;
use tower_service::Service;

fn is_no_endpoints(result: Result<(), mesh_core::BoxError>) -> bool {
    matches!(result, Err(e) if e.is::<NoEndpoints>())
}

fn rtt_of(balance: &TestBalance, n: usize) -> Duration {
    let status = balance.endpoints();
    status.iter().find(|s| s.addr == addr(n)).unwrap().rtt
}

#[tokio::test(start_paused = true)]
async fn switching_the_load_strategy_takes_effect_at_the_next_pick() {
    let (mut balance, _d, fakes) = balancer(2, BalanceConfig::default().seed(1));
    fakes[0].set_latency(Duration::from_millis(200));
    send_many(&mut balance, 200).await;
    let before = hits(&fakes);
    assert!(
        before[1] > before[0] * 5,
        "PeakEWMA avoids the slow one: {before:?}"
    );

    // Round robin: strict turns, whatever the latency.
    balance
        .reconfigure(BalanceConfig::default().load(LoadStrategy::RoundRobin))
        .unwrap();
    send_many(&mut balance, 100).await;
    let after = hits(&fakes);
    assert_eq!(
        (after[0] - before[0], after[1] - before[1]),
        (50, 50),
        "round robin alternates"
    );

    // Back to PeakEWMA: the estimates measured meanwhile are still there, so the slow endpoint
    // is avoided again at once.
    balance.reconfigure(BalanceConfig::default()).unwrap();
    send_many(&mut balance, 100).await;
    let last = hits(&fakes);
    assert!(
        last[1] - after[1] > (last[0] - after[0]) * 5,
        "PeakEWMA again: {after:?} → {last:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_strategy_keeps_every_estimate() {
    let (mut balance, _d, fakes) = balancer(3, BalanceConfig::default().seed(2));
    fakes[0].set_latency(Duration::from_millis(120));
    fakes[2].set_ready(false); // never sampled
    send_many(&mut balance, 60).await;
    let measured = [rtt_of(&balance, 0), rtt_of(&balance, 1)];
    assert!(measured[0] > Duration::from_millis(100), "{measured:?}");
    let unsampled = rtt_of(&balance, 2);
    assert!(
        unsampled < Duration::from_millis(30),
        "decayed since it was added"
    );

    // Same strategy, other settings changed: nothing of the load state moves.
    let config = BalanceConfig::default()
        .fail_fast_after(Duration::from_secs(1))
        .outliers(OutlierConfig::default().consecutive_failures(9));
    balance.reconfigure(config).unwrap();
    assert_eq!([rtt_of(&balance, 0), rtt_of(&balance, 1)], measured);
    assert_eq!(rtt_of(&balance, 2), unsampled);

    // New PeakEWMA parameters: measured estimates stay, an unsampled one takes the new start.
    let ewma = PeakEwmaConfig::default()
        .default_rtt(Duration::from_millis(80))
        .decay(Duration::from_secs(10));
    balance
        .reconfigure(BalanceConfig::default().load(LoadStrategy::PeakEwma(ewma)))
        .unwrap();
    assert_eq!([rtt_of(&balance, 0), rtt_of(&balance, 1)], measured);
    assert_eq!(rtt_of(&balance, 2), Duration::from_millis(80));
}

#[tokio::test(start_paused = true)]
async fn switching_into_peak_ewma_seeds_endpoints_without_samples() {
    let config = BalanceConfig::default()
        .seed(3)
        .load(LoadStrategy::PendingRequests);
    let (mut balance, _d, fakes) = balancer(2, config);
    fakes[1].set_ready(false);
    send_many(&mut balance, 10).await;
    assert_eq!(rtt_of(&balance, 1), Duration::ZERO, "not read, not seeded");
    let measured = rtt_of(&balance, 0);
    assert_eq!(measured, Duration::from_millis(10));
    balance.reconfigure(BalanceConfig::default()).unwrap();
    // Zero would make the unsampled endpoint the cheapest of all: it starts at default_rtt.
    assert_eq!(rtt_of(&balance, 1), Duration::from_millis(30));
    assert_eq!(rtt_of(&balance, 0), measured);
}

#[tokio::test(start_paused = true)]
async fn new_outlier_thresholds_apply_and_ejections_in_force_are_kept() {
    // Only the consecutive-failures detector (a window of 0 requests turns the rate one off).
    let consecutive = |n| {
        OutlierConfig::default()
            .failure_rate(0.5, 0, Duration::from_secs(10))
            .consecutive_failures(n)
    };
    let outliers = consecutive(1000);
    let (mut balance, _d, fakes) = balancer(4, BalanceConfig::default().seed(4).outliers(outliers));
    fakes[0].set_status(500);
    send_many(&mut balance, 100).await;
    assert!(fakes[0].hits() >= 5);
    assert_eq!(balance.status().ejected, 0, "1000 in a row needed");

    balance
        .reconfigure(BalanceConfig::default().outliers(consecutive(2)))
        .unwrap();
    for _ in 0..100 {
        if balance.status().ejected == 1 {
            break;
        }
        send(&mut balance).await.unwrap();
    }
    let gate = |b: &TestBalance| {
        b.endpoints()
            .into_iter()
            .find(|s| s.addr == addr(0))
            .unwrap()
    };
    let OutlierStatus::Ejected { until } = gate(&balance).outlier else {
        panic!("ejected after two failures: {:?}", gate(&balance));
    };

    // A shorter ejection applies to the next ejection, not to the one in force.
    let shorter = consecutive(2).base_ejection(Duration::from_secs(1));
    balance
        .reconfigure(BalanceConfig::default().outliers(shorter))
        .unwrap();
    assert_eq!(gate(&balance).outlier, OutlierStatus::Ejected { until });
    let hits = fakes[0].hits();
    send_many(&mut balance, 50).await;
    assert_eq!(fakes[0].hits(), hits, "still ejected");

    // Detection off: nothing would ever judge its probe, so it is back at once.
    balance
        .reconfigure(BalanceConfig::default().outliers(OutlierConfig::disabled()))
        .unwrap();
    assert_eq!(gate(&balance).outlier, OutlierStatus::InRotation);
    assert_eq!(balance.status().ejected, 0);
    send_many(&mut balance, 50).await;
    assert!(fakes[0].hits() > hits, "back in rotation");
}

#[tokio::test(start_paused = true)]
async fn new_locality_settings_retier_every_endpoint() {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let mut local = Vec::new();
    let mut remote = Vec::new();
    for n in 0..6 {
        let zone = if n < 3 { "z1" } else { "z2" };
        let (ep, b) = fleet.endpoint(n, 1, Locality::new("r1", zone, ""));
        handle.insert(&ep);
        if n < 3 { local.push(b) } else { remote.push(b) }
    }
    let config = BalanceConfig::default().seed(5);
    let mut balance = Balance::new(discover, fleet.make(), config).unwrap();
    send_many(&mut balance, 300).await;
    let sum = |bs: &[std::sync::Arc<Behaviour>]| bs.iter().map(|b| b.hits()).sum::<usize>();
    assert!(sum(&remote) > 50, "no local locality: one tier");

    let here = LocalityConfig::new(Locality::new("r1", "z1", ""));
    balance
        .reconfigure(BalanceConfig::default().locality(here))
        .unwrap();
    let tiers: Vec<_> = balance
        .endpoints()
        .iter()
        .map(|s| (s.addr, s.tier))
        .collect();
    for (a, tier) in tiers {
        // No subzone given: the local zone is the closest tier.
        let expected = if a < addr(3) {
            Proximity::Zone
        } else {
            Proximity::Region
        };
        assert_eq!(tier, Some(expected), "{a}");
    }
    let remote_before = sum(&remote);
    send_many(&mut balance, 300).await;
    assert_eq!(
        sum(&remote),
        remote_before,
        "everything stays in the local zone"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_start_set_live_ramps_young_endpoints() {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let (old, old_b) = fleet.endpoint(0, 1, Locality::default());
    handle.insert(&old);
    let config = BalanceConfig::default()
        .seed(6)
        .load(LoadStrategy::PendingRequests);
    let mut balance = Balance::new(discover, fleet.make(), config.clone()).unwrap();
    send_many(&mut balance, 1).await;
    tokio::time::advance(Duration::from_secs(50)).await;
    let (young, young_b) = fleet.endpoint(1, 1, Locality::default());
    handle.insert(&young);
    send_many(&mut balance, 100).await;
    assert!(young_b.hits() > 20, "no slow start: an even split");

    // A 60 s window: the old endpoint is at 50/60 of its weight, the young one at the floor.
    let ramp = config
        .clone()
        .slow_start(SlowStart::new(Duration::from_secs(60)));
    balance.reconfigure(ramp).unwrap();
    let (young_hits, old_hits) = (young_b.hits(), old_b.hits());
    send_many(&mut balance, 100).await;
    assert_eq!(
        young_b.hits(),
        young_hits,
        "the ramping endpoint loses every comparison"
    );
    assert_eq!(old_b.hits(), old_hits + 100);

    balance.reconfigure(config).unwrap();
    send_many(&mut balance, 100).await;
    assert!(young_b.hits() > young_hits + 20, "slow start off again");
}

#[tokio::test(start_paused = true)]
async fn fail_fast_after_and_max_waiters_change_for_callers_already_waiting() {
    let config = BalanceConfig::default()
        .seed(7)
        .fail_fast_after(Duration::from_secs(60));
    let (balance, _d, fakes) = balancer(1, config.clone());
    fakes[0].set_ready(false);
    let started = Instant::now();
    let mut waiting = balance.clone();
    let mut t = task::spawn(());
    assert_pending!(t.enter(|cx, _| waiting.poll_ready(cx)));

    balance
        .reconfigure(
            config
                .clone()
                .fail_fast_after(Duration::from_secs(1))
                .max_waiters(1),
        )
        .unwrap();
    assert!(t.is_woken(), "waiting callers re-read the settings");
    assert_pending!(t.enter(|cx, _| waiting.poll_ready(cx)));
    // The queue now holds one caller, the one already waiting.
    let mut other = balance.clone();
    let mut t2 = task::spawn(());
    assert!(is_no_endpoints(assert_ready!(
        t2.enter(|cx, _| other.poll_ready(cx))
    )));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(t.is_woken());
    assert!(is_no_endpoints(assert_ready!(
        t.enter(|cx, _| waiting.poll_ready(cx))
    )));
    assert_eq!(Instant::now() - started, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn invalid_or_hash_changing_configs_change_nothing() {
    let (mut balance, _d, fakes) = balancer(2, BalanceConfig::default().seed(8));
    let handle = balance.handle();
    let error = handle
        .reconfigure(
            BalanceConfig::default()
                .load(LoadStrategy::RoundRobin)
                .max_waiters(0),
        )
        .unwrap_err();
    assert_eq!(error.key(), "max_waiters");
    let sticky = HashConfig::new(HashKey::path());
    let error = balance
        .reconfigure(
            BalanceConfig::default()
                .load(LoadStrategy::RoundRobin)
                .hash(sticky),
        )
        .unwrap_err();
    assert_eq!(error.key(), "hash");
    // Still PeakEWMA: a slow endpoint is avoided, which round robin would not do.
    fakes[0].set_latency(Duration::from_millis(200));
    send_many(&mut balance, 100).await;
    assert!(fakes[1].hits() > fakes[0].hits() * 5, "{:?}", hits(&fakes));

    assert_eq!(handle.reconfigure(BalanceConfig::default()), Ok(true));
    drop(balance);
    assert_eq!(handle.reconfigure(BalanceConfig::default()), Ok(false));
}

#[tokio::test(start_paused = true)]
async fn hash_ring_settings_may_change() {
    let sticky = HashConfig::new(HashKey::path());
    let (balance, _d, _fakes) = balancer(2, BalanceConfig::default().seed(9).hash(sticky.clone()));
    let looser = sticky.load_factor(3.0);
    assert_eq!(
        balance.reconfigure(BalanceConfig::default().hash(looser)),
        Ok(())
    );
}

#[tokio::test(start_paused = true)]
async fn reconfiguring_under_load_loses_no_request() {
    let (balance, _d, fakes) = balancer(8, BalanceConfig::default().seed(10));
    let configs = [
        BalanceConfig::default().load(LoadStrategy::RoundRobin),
        BalanceConfig::default().load(LoadStrategy::PendingRequests),
        BalanceConfig::default()
            .outliers(OutlierConfig::default().consecutive_failures(1))
            .slow_start(SlowStart::new(Duration::from_secs(5))),
        BalanceConfig::default()
            .locality(LocalityConfig::new(Locality::new("r1", "z1", "")).strict(true))
            .fail_fast_after(Duration::from_millis(100)),
        BalanceConfig::default(),
    ];
    let reconfigurer = {
        let balance = balance.clone();
        tokio::spawn(async move {
            for round in 0..40 {
                tokio::time::sleep(Duration::from_millis(7)).await;
                balance
                    .reconfigure(configs[round % configs.len()].clone())
                    .unwrap();
            }
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut clone = balance.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..30 {
                let response = clone.ready().await.unwrap().call(Request::new(())).await;
                let response = response.expect("no request fails because of a reconfiguration");
                assert_eq!(response.status(), 200);
                http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap();
                ok += 1;
            }
            ok
        }));
    }
    let mut served = 0;
    for t in tasks {
        served += t.await.unwrap();
    }
    reconfigurer.await.unwrap();
    assert_eq!(served, 16 * 30);
    assert_eq!(hits(&fakes).iter().sum::<usize>(), 16 * 30);
    assert!(balance.endpoints().iter().all(|s| s.in_flight == 0));
}

/// `max_in_flight` (Envoy's `max_requests`): past the bound, `poll_ready` fails at once with
/// `Overloaded`; a request ending makes room; a reconfigure lifts or sets the bound live.
#[tokio::test(start_paused = true)]
async fn max_in_flight_sheds_past_the_bound_and_follows_a_reconfigure() {
    let config = BalanceConfig::default().seed(5).max_in_flight(2);
    let (mut balance, _d, _fakes) = balancer(2, config.clone());
    // Two responses whose bodies are not read yet: both requests are still in flight.
    let first = balance
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let second = balance
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let mut third = balance.clone();
    let refused = third.ready().await.map(|_| ()).unwrap_err();
    assert!(
        refused.is::<mesh_core::error::Overloaded>(),
        "expected Overloaded, got {refused}"
    );

    // The first body ends: room for one more.
    drop(first);
    assert!(third.ready().await.is_ok());
    let third_response = third.call(Request::new(())).await.unwrap();
    assert!(
        balance.clone().ready().await.is_err(),
        "bound reached again"
    );

    // Lifted while two are in flight: the next caller goes through at once.
    balance
        .reconfigure(config.clone().max_in_flight(None))
        .unwrap();
    assert!(balance.clone().ready().await.is_ok());
    // And set again, below what is in flight.
    balance.reconfigure(config.max_in_flight(1)).unwrap();
    assert!(balance.clone().ready().await.is_err());
    drop((second, third_response));
    assert!(balance.clone().ready().await.is_ok());
    assert!(
        BalanceConfig::default()
            .max_in_flight(0)
            .validate()
            .is_err()
    );
}
