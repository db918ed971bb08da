//! The targets for the `mesh` stack on the S1–S4 scenarios, checked on virtual time, plus
//! evidence that the scenarios bite (round robin collapses in S1) and that a seed gives one
//! report.
//!
//! Reading of the targets: "S1 p99 ≤ 1.5× healthy p99 and p99.9 ≤ 3×" compares the faulty run's
//! p99 with 1.5 × the healthy run's p99, and its p99.9 with 3 × the healthy run's **p99.9** (each
//! quantile with its own healthy counterpart). The healthy run is the same stack, seed and
//! topology with every fault removed.
//!
//! Each run simulates 60 s at 1000 requests/s (60 000 requests) on a paused clock; in a debug
//! build one run takes a few seconds of CPU.

use mesh_scenario::{ScenarioId, Stack, ms};
use mesh_sim::Report;

const SEED: u64 = 1;

fn run(id: ScenarioId, stack: Stack) -> Report {
    stack.run(&id.scenario(SEED), SEED).expect("the run starts")
}

fn healthy(id: ScenarioId, stack: Stack) -> Report {
    stack
        .run(&id.scenario(SEED).healthy(), SEED)
        .expect("the run starts")
}

#[test]
fn s1_mesh_keeps_its_tail_with_one_slow_endpoint() {
    let healthy = healthy(ScenarioId::S1, Stack::Mesh);
    let slow = run(ScenarioId::S1, Stack::Mesh);
    eprintln!("healthy:\n{healthy}\nS1:\n{slow}");
    assert!(
        slow.p99 <= healthy.p99.mul_f64(1.5),
        "p99 {} ms > 1.5 × healthy {} ms",
        ms(slow.p99),
        ms(healthy.p99)
    );
    assert!(
        slow.p999 <= healthy.p999.mul_f64(3.0),
        "p99.9 {} ms > 3 × healthy {} ms",
        ms(slow.p999),
        ms(healthy.p999)
    );
    assert_eq!(slow.success_rate, 1.0);
    // The slow endpoint was steered around within a second of its slow-down.
    let slow_endpoint = &slow.endpoints[0];
    assert!(
        slow_endpoint
            .time_to_ejection
            .is_some_and(|t| t.as_secs_f64() < 1.0),
        "{slow}"
    );
}

#[test]
fn s1_round_robin_collapses_above_p95() {
    let healthy = healthy(ScenarioId::S1, Stack::RoundRobin);
    let slow = run(ScenarioId::S1, Stack::RoundRobin);
    eprintln!("healthy:\n{healthy}\nS1:\n{slow}");
    // A tenth of the traffic for half the run is 20 × slower: 5 % of requests, so the p99 is
    // the slow endpoint's.
    assert!(
        slow.p99 >= healthy.p99.mul_f64(5.0),
        "p99 {} ms vs healthy {} ms",
        ms(slow.p99),
        ms(healthy.p99)
    );
    assert_eq!(slow.bad_endpoint_share, Some(0.1));
    assert_eq!(slow.endpoints[0].time_to_ejection, None);
}

#[test]
fn s2_mesh_retries_around_a_failing_endpoint_within_budget() {
    let report = run(ScenarioId::S2, Stack::Mesh);
    eprintln!("{report}");
    assert!(report.success_rate >= 0.999, "{report}");
    assert!(report.retry_amplification <= 1.2, "{report}");
    assert!(
        report.endpoints[0]
            .time_to_ejection
            .is_some_and(|t| t.as_secs_f64() < 1.0),
        "{report}"
    );
    // Determinism: the same seed gives the same report, bit for bit.
    assert_eq!(run(ScenarioId::S2, Stack::Mesh), report);
}

#[test]
fn s4_mesh_fails_over_when_the_local_zone_loses_most_endpoints() {
    let report = run(ScenarioId::S4, Stack::Mesh);
    eprintln!("{report}");
    assert!(report.success_rate >= 0.999, "{report}");
    // After the failure, the two local survivors and the remote zone share the traffic.
    let remote: u64 = report.endpoints[5..].iter().map(|e| e.attempts).sum();
    assert!(remote > 10_000, "{report}");
}
