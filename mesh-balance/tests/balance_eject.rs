//! Outlier ejection: consecutive failures and failure rate eject, one probe decides, the
//! ejection cap and panic mode hold, overloaded answers do not eject.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use mesh_balance::{BalanceConfig, OutlierConfig};
use support::*;
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower_service::Service;

fn seeded(seed: u64) -> BalanceConfig {
    BalanceConfig::default().seed(seed)
}

/// Sends one request at a time until `bad` is ejected; the requests `bad` served by then.
async fn until_ejected(balance: &mut TestBalance, bad: &Behaviour, limit: usize) -> usize {
    for _ in 0..limit {
        if balance.status().ejected > 0 {
            break;
        }
        let _ = send(balance).await;
    }
    bad.hits()
}

#[tokio::test(start_paused = true)]
async fn a_503_endpoint_is_ejected_within_five_failures_and_probed_back() {
    let (mut balance, _d, fakes) = balancer(4, seeded(10));
    let bad = &fakes[2];
    bad.set_status(503);
    let served = until_ejected(&mut balance, bad, 200).await;
    assert_eq!(served, 5, "ejected after exactly 5 consecutive failures");
    assert_eq!(balance.status().ejected, 1);

    // Ejected: no traffic for the first ejection (30 s ± 10 %).
    send_many(&mut balance, 100).await;
    assert_eq!(bad.hits(), 5);

    // Still broken when its time is up: with four tasks sending, exactly one probe goes out, fails,
    // and the endpoint is ejected again, for longer (60 s ± 10 %).
    bad.set_latency(Duration::from_millis(200));
    tokio::time::sleep(Duration::from_secs(34)).await;
    send_concurrently(&balance, 4, 25).await;
    assert_eq!(bad.hits(), 6, "exactly one probe");
    assert_eq!(balance.status().ejected, 1);
    tokio::time::sleep(Duration::from_secs(40)).await;
    send_many(&mut balance, 50).await;
    assert_eq!(
        bad.hits(),
        6,
        "the second ejection is longer than the first"
    );

    // Recovered: the next probe succeeds and the endpoint is back in rotation.
    bad.set_status(200);
    bad.set_latency(Duration::from_millis(10));
    tokio::time::sleep(Duration::from_secs(30)).await;
    send_many(&mut balance, 100).await;
    assert_eq!(balance.status().ejected, 0);
    // The probe, and then ordinary traffic again.
    assert!(bad.hits() > 7, "back in rotation: {}", bad.hits());
}

#[tokio::test(start_paused = true)]
async fn overloaded_answers_do_not_eject() {
    let (mut balance, _d, fakes) = balancer(4, seeded(11));
    fakes[0].set_status(503);
    fakes[0].retry_after.store(true, Ordering::SeqCst);
    fakes[1].set_status(429);
    send_many(&mut balance, 200).await;
    assert_eq!(balance.status().ejected, 0);
    assert!(fakes[0].hits() > 10 && fakes[1].hits() > 10);
}

#[tokio::test(start_paused = true)]
async fn a_high_failure_rate_ejects_without_consecutive_failures() {
    let (mut balance, _d, fakes) = balancer(3, seeded(12));
    fakes[1].alternate.store(true, Ordering::SeqCst);
    let served = until_ejected(&mut balance, &fakes[1], 500).await;
    assert_eq!(balance.status().ejected, 1);
    assert!(
        (20..=21).contains(&served),
        "ejected at the 20-request minimum: {served}"
    );
}

#[tokio::test(start_paused = true)]
async fn at_most_half_are_ejected_and_one_always_stays() {
    let (mut balance, _d, fakes) = balancer(4, seeded(13));
    for f in &fakes {
        f.set_status(500);
    }
    send_many(&mut balance, 200).await;
    assert_eq!(balance.status().ejected, 2, "floor(50 % of 4)");

    // A single endpoint is never ejected.
    let (mut single, _d1, lone) = balancer(1, seeded(14));
    lone[0].set_status(500);
    send_many(&mut single, 50).await;
    assert_eq!((single.status().ejected, lone[0].hits()), (0, 50));

    // Even a 100 % share leaves one endpoint in.
    let all = seeded(15).outliers(
        OutlierConfig::default()
            .max_ejected_share(1.0)
            .panic_threshold(0.0),
    );
    let (mut pair, _d2, both) = balancer(2, all);
    for f in &both {
        f.set_status(500);
    }
    send_many(&mut pair, 100).await;
    assert_eq!(pair.status().ejected, 1);
}

#[tokio::test(start_paused = true)]
async fn below_the_panic_threshold_every_endpoint_is_used() {
    let config = seeded(16).outliers(OutlierConfig::default().max_ejected_share(1.0));
    let (mut balance, _d, fakes) = balancer(4, config);
    for f in &fakes[..3] {
        f.set_status(500);
    }
    for _ in 0..300 {
        if balance.status().ejected == 3 {
            break;
        }
        send(&mut balance).await.unwrap();
    }
    send(&mut balance).await.unwrap(); // refreshes the status
    let status = balance.status();
    assert_eq!(status.ejected, 3);
    assert!(status.panic, "25 % healthy < 50 %");
    let before = hits(&fakes);
    send_many(&mut balance, 200).await;
    let after = hits(&fakes);
    for i in 0..3 {
        assert!(
            after[i] > before[i] + 20,
            "ejected endpoint {i} used in panic: {before:?} → {after:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_reservation_is_given_back() {
    let (mut balance, _d, fakes) = balancer(2, seeded(17));
    fakes[0].set_status(503);
    until_ejected(&mut balance, &fakes[0], 100).await;
    assert_eq!(fakes[0].hits(), 5);
    fakes[0].set_status(200);
    tokio::time::sleep(Duration::from_secs(40)).await;

    // A clone reserves (the probe wins any pair it is in) and is dropped unused.
    let mut clone = balance.clone();
    let mut t = task::spawn(());
    assert_ready_ok!(t.enter(|cx, _| clone.poll_ready(cx)));
    drop(clone);
    // The probe is available again and brings the endpoint back.
    send_many(&mut balance, 20).await;
    assert!(fakes[0].hits() > 5);
    assert_eq!(balance.status().ejected, 0);
}

#[tokio::test(start_paused = true)]
async fn waiting_callers_are_woken_when_an_ejection_ends_and_when_its_probe_succeeds() {
    // No panic mode, which would use the ejected endpoint as soon as the other is unready.
    let config = seeded(18)
        .fail_fast_after(Duration::from_secs(600))
        .outliers(OutlierConfig::default().panic_threshold(0.0));
    let (mut balance, _d, fakes) = balancer(2, config);
    fakes[0].set_status(503);
    until_ejected(&mut balance, &fakes[0], 100).await;
    assert_eq!(fakes[0].hits(), 5);
    fakes[0].set_status(200);
    // The only endpoint in rotation stops being ready: a caller has to wait.
    fakes[1].set_ready(false);
    let mut waiting = balance.clone();
    let mut t = task::spawn(());
    assert_pending!(t.enter(|cx, _| waiting.poll_ready(cx)));

    // Nothing happens before the ejection ends (30 s ± 10 %); then the caller is woken, long
    // before the fail-fast timer, and takes the probe.
    tokio::time::sleep(Duration::from_secs(26)).await;
    assert!(!t.is_woken());
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        t.is_woken(),
        "woken when the ejected endpoint may be probed"
    );
    assert_ready_ok!(t.enter(|cx, _| waiting.poll_ready(cx)));
    let probe = waiting.call(Request::new(()));

    // While the probe is out, another caller waits, and is woken once the probe's body ends.
    let mut other = balance.clone();
    let mut t2 = task::spawn(());
    assert_pending!(t2.enter(|cx, _| other.poll_ready(cx)));
    let response = probe.await.unwrap();
    assert!(!t2.is_woken(), "the probe is decided when its body ends");
    response.into_body().collect().await.unwrap();
    assert!(t2.is_woken(), "woken when the endpoint is back in rotation");
    assert_ready_ok!(t2.enter(|cx, _| other.poll_ready(cx)));
    assert_eq!(balance.status().ejected, 0);
    assert_eq!(fakes[0].hits(), 6);
}

/// Sends `each` requests every 10 s for `secs` seconds of virtual time.
async fn traffic_for(balance: &mut TestBalance, secs: u64, each: usize) {
    for _ in 0..secs / 10 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        send_many(balance, each).await;
    }
}

#[tokio::test(start_paused = true)]
async fn panic_mode_ends_once_every_ejected_endpoint_heals() {
    // Three of four may be ejected: 25 % healthy is below the 50 % panic threshold.
    let config = seeded(19).outliers(OutlierConfig::default().max_ejected_share(1.0));
    let (mut balance, _d, fakes) = balancer(4, config);
    for f in &fakes[..3] {
        f.set_status(500);
    }
    for _ in 0..300 {
        if balance.status().ejected == 3 {
            break;
        }
        send(&mut balance).await.unwrap();
    }
    send(&mut balance).await.unwrap(); // refreshes the status
    assert_eq!(balance.status().ejected, 3);
    assert!(balance.status().panic);

    // Everything heals. Panic traffic reaches the ejected endpoints all along; once each one's
    // ejection (30 s ± 10 %) is over, its next request is its probe, and it succeeds.
    for f in &fakes {
        f.set_status(200);
    }
    traffic_for(&mut balance, 60, 20).await;
    let status = balance.status();
    assert_eq!(
        (status.ejected, status.panic),
        (0, false),
        "back in rotation within one ejection: {status:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn panic_from_ejections_and_an_unready_endpoint_ends_once_they_heal() {
    // The defaults: at most two of four ejected. Two ejected and one not ready leave 25 %
    // healthy, below the 50 % panic threshold.
    let (mut balance, _d, fakes) = balancer(4, seeded(20));
    for f in &fakes[..2] {
        f.set_status(500);
    }
    for _ in 0..300 {
        if balance.status().ejected == 2 {
            break;
        }
        send(&mut balance).await.unwrap();
    }
    assert_eq!(balance.status().ejected, 2);
    fakes[2].set_ready(false);
    send_many(&mut balance, 20).await; // a pick finds it unready
    assert!(balance.status().panic, "{:?}", balance.status());

    for f in &fakes[..2] {
        f.set_status(200);
    }
    traffic_for(&mut balance, 60, 20).await;
    let status = balance.status();
    assert_eq!((status.ejected, status.ready, status.panic), (0, 3, false));
    // The third endpoint is still not ready: the two recovered ones carry the traffic again.
    let before = hits(&fakes);
    send_many(&mut balance, 100).await;
    let after = hits(&fakes);
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "{before:?} → {after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn time_in_rotation_takes_the_ejection_multiplier_back_down() {
    // Fails, recovers, fails again: a flapping endpoint.
    let (mut balance, _d, fakes) = balancer(4, seeded(21));
    let flapping = &fakes[1];
    flapping.set_status(503);
    until_ejected(&mut balance, flapping, 200).await;
    assert_eq!(flapping.hits(), 5);

    // Up again when its probe is due (30 s ± 10 %): back in rotation.
    flapping.set_status(200);
    tokio::time::sleep(Duration::from_secs(34)).await;
    send_many(&mut balance, 20).await;
    assert_eq!(balance.status().ejected, 0);

    // 30 s in rotation (three 10 s steps) pay for the first ejection: the next one lasts
    // 30 s again, not 60 s.
    traffic_for(&mut balance, 30, 10).await;
    flapping.set_status(503);
    until_ejected(&mut balance, flapping, 200).await;
    assert_eq!(balance.status().ejected, 1);
    flapping.set_status(200);
    tokio::time::sleep(Duration::from_secs(34)).await;
    send_many(&mut balance, 20).await;
    assert_eq!(
        balance.status().ejected,
        0,
        "the second ejection is as short as the first"
    );
}

#[tokio::test(start_paused = true)]
async fn failures_that_continue_still_lengthen_the_ejection() {
    // Ejected, returned, and ejected again after only a few seconds in rotation: the
    // multiplier grows (60 s ± 10 %).
    let (mut balance, _d, fakes) = balancer(4, seeded(22));
    let bad = &fakes[3];
    bad.set_status(503);
    until_ejected(&mut balance, bad, 200).await;
    bad.set_status(200);
    tokio::time::sleep(Duration::from_secs(34)).await;
    send_many(&mut balance, 20).await;
    assert_eq!(balance.status().ejected, 0);
    bad.set_status(503);
    until_ejected(&mut balance, bad, 200).await;
    let hits = bad.hits();
    bad.set_status(200);
    tokio::time::sleep(Duration::from_secs(40)).await;
    send_many(&mut balance, 50).await;
    assert_eq!(bad.hits(), hits, "still ejected after 40 s");
    tokio::time::sleep(Duration::from_secs(30)).await;
    send_many(&mut balance, 50).await;
    assert_eq!(balance.status().ejected, 0);
}

#[test]
fn a_zero_multiplier_decay_is_refused_by_name() {
    let config = BalanceConfig::default()
        .outliers(OutlierConfig::default().multiplier_decay(Duration::ZERO));
    assert_eq!(
        config.validate().unwrap_err().key(),
        "outliers.multiplier_decay"
    );
    assert!(BalanceConfig::default().validate().is_ok());
}
