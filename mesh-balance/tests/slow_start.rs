//! Slow start: the weight factor over time, its shape, floor and the disabled case.

use std::time::Duration;

use mesh_balance::slow_start::SlowStart;
use mesh_core::Weight;
use tokio::time::Instant;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: {actual} != {expected}"
    );
}

#[test]
fn defaults_are_envoys_and_disabled() {
    let default = SlowStart::default();
    assert_eq!(default.get_window(), Duration::ZERO);
    assert_eq!(default.get_aggression(), 1.0);
    assert_eq!(default.get_min_weight_percent(), 10.0);
    assert!(!default.is_enabled());
    assert!(SlowStart::new(secs(30.0)).is_enabled());
    assert_eq!(default.validate(), Ok(()));
}

#[test]
fn linear_ramp_table() {
    let slow_start = SlowStart::new(secs(100.0));
    let table = [
        (0.0, 0.10), // the floor
        (5.0, 0.10),
        (10.0, 0.10),
        (25.0, 0.25),
        (50.0, 0.50),
        (99.0, 0.99),
        (100.0, 1.0),
        (1e6, 1.0),
    ];
    for (t, factor) in table {
        assert_close(slow_start.factor(secs(t)), factor, &format!("t = {t}"));
    }
}

#[test]
fn aggression_bends_the_ramp() {
    // Exponent 1/aggression: 2 rises early (square root), 0.5 stays low (square).
    let eager = SlowStart::new(secs(100.0)).aggression(2.0);
    let shy = SlowStart::new(secs(100.0)).aggression(0.5);
    for (t, eager_factor, shy_factor) in [
        (4.0, 0.2, 0.1), // shy: 0.0016, held at the floor
        (25.0, 0.5, 0.1),
        (36.0, 0.6, 0.1296),
        (64.0, 0.8, 0.4096),
        (81.0, 0.9, 0.6561),
        (100.0, 1.0, 1.0),
    ] {
        assert_close(
            eager.factor(secs(t)),
            eager_factor,
            &format!("eager t = {t}"),
        );
        assert_close(shy.factor(secs(t)), shy_factor, &format!("shy t = {t}"));
    }
}

#[test]
fn floor_is_configurable() {
    let no_floor = SlowStart::new(secs(10.0)).min_weight_percent(0.0);
    assert_eq!(no_floor.factor(Duration::ZERO), 0.0);
    assert_close(no_floor.factor(secs(1.0)), 0.1, "1 s of 10");
    let high_floor = SlowStart::new(secs(10.0)).min_weight_percent(50.0);
    assert_close(high_floor.factor(secs(2.0)), 0.5, "held at 50 %");
    assert_close(high_floor.factor(secs(7.0)), 0.7, "above the floor");
}

#[test]
fn zero_window_disables_slow_start() {
    let disabled = SlowStart::new(Duration::ZERO).aggression(3.0);
    for t in [0.0, 0.001, 1.0] {
        assert_eq!(disabled.factor(secs(t)), 1.0);
    }
    let weight = Weight::new(7).unwrap();
    let now = Instant::now();
    assert_eq!(disabled.effective_weight(weight, now, now), 7.0);
}

#[tokio::test(start_paused = true)]
async fn effective_weight_follows_the_clock() {
    let slow_start = SlowStart::new(secs(60.0));
    let weight = Weight::new(20).unwrap();
    let added_at = Instant::now();
    assert_close(
        slow_start.effective_weight(weight, added_at, Instant::now()),
        2.0,
        "just added",
    );
    tokio::time::advance(secs(45.0)).await;
    assert_close(
        slow_start.effective_weight(weight, added_at, Instant::now()),
        15.0,
        "three quarters in",
    );
    tokio::time::advance(secs(15.0)).await;
    assert_eq!(
        slow_start.effective_weight(weight, added_at, Instant::now()),
        20.0
    );
    // A `now` before `added_at` counts as just added rather than panicking.
    let later = Instant::now() + secs(1.0);
    assert_close(
        slow_start.effective_weight(weight, later, Instant::now()),
        2.0,
        "clock skew",
    );
}

#[test]
fn factor_is_monotonic_and_bounded_for_any_shape() {
    for aggression in [0.1, 0.5, 1.0, 1.5, 4.0, 100.0] {
        let slow_start = SlowStart::new(secs(30.0)).aggression(aggression);
        let mut last = 0.0;
        for ms in (0..=31_000).step_by(250) {
            let factor = slow_start.factor(Duration::from_millis(ms));
            assert!((0.1..=1.0).contains(&factor), "{aggression}: {factor}");
            assert!(factor >= last, "{aggression}: not monotonic at {ms} ms");
            last = factor;
        }
        assert_eq!(last, 1.0);
    }
}

#[test]
fn invalid_settings_are_named_and_never_poison_the_factor() {
    let cases = [
        (SlowStart::new(secs(1.0)).aggression(0.0), "aggression"),
        (SlowStart::new(secs(1.0)).aggression(-1.0), "aggression"),
        (SlowStart::new(secs(1.0)).aggression(f64::NAN), "aggression"),
        (
            SlowStart::new(secs(1.0)).aggression(f64::INFINITY),
            "aggression",
        ),
        (
            SlowStart::new(secs(1.0)).min_weight_percent(-1.0),
            "min_weight_percent",
        ),
        (
            SlowStart::new(secs(1.0)).min_weight_percent(101.0),
            "min_weight_percent",
        ),
        (
            SlowStart::new(secs(1.0)).min_weight_percent(f64::NAN),
            "min_weight_percent",
        ),
    ];
    for (slow_start, key) in cases {
        let error = slow_start.validate().unwrap_err();
        assert_eq!(error.key(), key);
        assert!(error.to_string().contains(key));
        // Even unvalidated, the factor stays a number in [0, 1].
        for t in [0.0, 0.5, 1.0] {
            let factor = slow_start.factor(secs(t));
            assert!((0.0..=1.0).contains(&factor), "{key}: {factor}");
        }
    }
}

#[test]
fn an_endpoint_is_cold_after_ten_seconds_out_of_rotation() {
    let slow_start = SlowStart::new(Duration::from_secs(60));
    assert_eq!(slow_start.get_cold_after(), Duration::from_secs(10));
    assert!(!slow_start.is_cold_after(secs(9.999)));
    assert!(slow_start.is_cold_after(secs(10.0)));
    assert!(slow_start.cold_after(secs(2.0)).is_cold_after(secs(2.0)));
    // Without a ramp, nothing restarts.
    assert!(!SlowStart::default().is_cold_after(secs(3600.0)));
}
