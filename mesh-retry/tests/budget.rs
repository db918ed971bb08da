//! Retry budgets: exact fractional ratios (tower issue 857), the sliding window against a
//! reference model, sharing across clones, and gRPC throttling semantics.

use std::time::Duration;

use mesh_retry::budget::{
    RetryBudget, TokenBucketBudget, TokenBucketConfig, WindowBudget, WindowBudgetConfig,
};
use proptest::prelude::*;

fn ratio_only(ratio: f64) -> WindowBudget {
    WindowBudget::new(WindowBudgetConfig::default().ratio(ratio).min_per_sec(0)).unwrap()
}

fn withdraw_all(budget: &WindowBudget) -> u64 {
    let mut granted = 0;
    while budget.withdraw() {
        granted += 1;
        assert!(granted < 1_000_000, "unbounded budget");
    }
    granted
}

/// tower issue 857: a ratio like 0.6 must allow exactly floor(0.6 × requests) retries.
#[tokio::test(start_paused = true)]
async fn fractional_ratios_are_exact() {
    for (ratio, numer, denom) in [(0.1, 1, 10), (0.25, 1, 4), (0.6, 3, 5), (0.9, 9, 10)] {
        for requests in [1u64, 3, 7, 10, 40, 99, 100, 1000] {
            let budget = ratio_only(ratio);
            for _ in 0..requests {
                budget.deposit();
            }
            let expected = requests * numer / denom;
            assert_eq!(
                withdraw_all(&budget),
                expected,
                "ratio {ratio}, {requests} requests"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn min_rate_allows_retries_without_traffic() {
    let budget = WindowBudget::default();
    // 10 per second over 10 s.
    assert_eq!(withdraw_all(&budget), 100);
}

#[tokio::test(start_paused = true)]
async fn old_slots_are_forgotten() {
    let budget = ratio_only(0.5);
    for _ in 0..10 {
        budget.deposit();
    }
    assert_eq!(withdraw_all(&budget), 5);
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(budget.requests(), 10, "still within the window");
    assert!(!budget.withdraw());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(budget.requests(), 0);
    assert_eq!(budget.retries(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_slot_reused_a_window_later_starts_afresh() {
    let budget = ratio_only(1.0);
    for _ in 0..4 {
        budget.deposit();
    }
    // The same place in the ring, one window later: its old count is not added to.
    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..3 {
        budget.deposit();
    }
    assert_eq!(budget.requests(), 3);
    assert_eq!(withdraw_all(&budget), 3);
}

/// Deposits take no lock: concurrent ones must all be counted.
#[test]
fn concurrent_deposits_are_all_counted() {
    // A window far longer than the test, so no deposit can leave it while it runs.
    let config = WindowBudgetConfig::default()
        .window(Duration::from_secs(3600))
        .min_per_sec(0)
        .ratio(1.0);
    let budget = WindowBudget::new(config).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..25_000 {
                    budget.deposit();
                }
            });
        }
    });
    assert_eq!(budget.requests(), 100_000);
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_budget() {
    let budget = ratio_only(1.0);
    let clone = budget.clone();
    budget.deposit();
    assert!(clone.withdraw());
    assert!(!budget.withdraw());
}

#[test]
fn bad_settings_name_the_key() {
    let err = WindowBudget::new(WindowBudgetConfig::default().ratio(-0.1)).unwrap_err();
    assert_eq!(err.key(), "ratio");
    assert_eq!(
        err.to_string(),
        "invalid `ratio`: must be a number between 0 and 100"
    );
    let err = WindowBudget::new(WindowBudgetConfig::default().slots(0)).unwrap_err();
    assert_eq!(err.key(), "slots");
    let err = WindowBudget::new(WindowBudgetConfig::default().window(Duration::ZERO)).unwrap_err();
    assert_eq!(err.key(), "window");
    assert_eq!(
        TokenBucketBudget::new(TokenBucketConfig::default().token_ratio(0.0))
            .unwrap_err()
            .key(),
        "token_ratio"
    );
    assert_eq!(
        TokenBucketBudget::new(TokenBucketConfig::default().max_tokens(0))
            .unwrap_err()
            .key(),
        "max_tokens"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Advance(u64),
    Deposit,
    Withdraw,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..3000).prop_map(Op::Advance),
        Just(Op::Deposit),
        Just(Op::Deposit),
        Just(Op::Withdraw),
    ]
}

/// The obvious model: keep every event with its slot number, count those still in the window.
struct Model {
    events: Vec<(u64, bool)>, // (slot, is_retry)
    ratio_scaled: u64,
    reserve_scaled: u64,
    slots: u64,
}

impl Model {
    fn counts(&self, slot: u64) -> (u64, u64) {
        let live = self.events.iter().filter(|(s, _)| s + self.slots > slot);
        live.fold((0, 0), |(req, ret), (_, retry)| {
            if *retry {
                (req, ret + 1)
            } else {
                (req + 1, ret)
            }
        })
    }

    fn withdraw(&mut self, slot: u64) -> bool {
        let (requests, retries) = self.counts(slot);
        let ok = (retries + 1) * 10_000 <= requests * self.ratio_scaled + self.reserve_scaled;
        if ok {
            self.events.push((slot, true));
        }
        ok
    }
}

proptest! {
    #[test]
    fn window_budget_matches_the_reference_model(
        ratio_tenths_of_percent in 0u64..1500,
        min_per_sec in 0u32..4,
        window_s in 1u64..6,
        slots in 1u32..8,
        ops in prop::collection::vec(op(), 0..200),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let ratio = ratio_tenths_of_percent as f64 / 1000.0;
            let window = Duration::from_secs(window_s);
            let budget = WindowBudget::new(
                WindowBudgetConfig::default()
                    .ratio(ratio)
                    .min_per_sec(min_per_sec)
                    .window(window)
                    .slots(slots),
            )
            .unwrap();
            let mut model = Model {
                events: Vec::new(),
                ratio_scaled: ratio_tenths_of_percent * 10,
                reserve_scaled: u64::from(min_per_sec) * window_s * 10_000,
                slots: u64::from(slots),
            };
            let slot_ns = window_s * 1_000_000_000 / u64::from(slots);
            let mut now_ms = 0;
            for op in ops {
                let slot = now_ms * 1_000_000 / slot_ns;
                match op {
                    Op::Advance(ms) => {
                        tokio::time::advance(Duration::from_millis(ms)).await;
                        now_ms += ms;
                    }
                    Op::Deposit => {
                        budget.deposit();
                        model.events.push((slot, false));
                    }
                    Op::Withdraw => {
                        prop_assert_eq!(budget.withdraw(), model.withdraw(slot));
                    }
                }
                let (requests, retries) = model.counts(now_ms * 1_000_000 / slot_ns);
                prop_assert_eq!(budget.requests(), requests);
                prop_assert_eq!(budget.retries(), retries);
            }
            Ok(())
        })?;
    }
}

#[test]
fn token_bucket_follows_grpc_throttling() {
    // max 10 tokens, ratio 0.5: retries stop at ≤ 5 tokens.
    let budget =
        TokenBucketBudget::new(TokenBucketConfig::default().max_tokens(10).token_ratio(0.5))
            .unwrap();
    assert!(budget.withdraw());
    for _ in 0..4 {
        budget.record(false);
    }
    assert_eq!(budget.tokens_milli(), 6000);
    assert!(budget.withdraw(), "6 > 5");
    budget.record(false);
    assert!(!budget.withdraw(), "5 is not above half of 10");
    budget.record(true);
    assert_eq!(budget.tokens_milli(), 5500);
    assert!(budget.withdraw());
    // Never above max, never below zero.
    for _ in 0..100 {
        budget.record(true);
    }
    assert_eq!(budget.tokens_milli(), 10_000);
    for _ in 0..100 {
        budget.record(false);
    }
    assert_eq!(budget.tokens_milli(), 0);
    // Clones share the bucket.
    let clone = budget.clone();
    clone.record(true);
    assert_eq!(budget.tokens_milli(), 500);
}
