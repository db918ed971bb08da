//! `scenario`: the S1–S4 fault scenarios of issue 8, run through three client stacks on a paused
//! clock, with the same numbers on every run of a seed.
//!
//! The scenarios and stacks are defined in [`mesh_scenario`]; the simulation is
//! [`mesh_sim`]. Each (scenario, stack) pair runs 60 s of virtual time at 1000 requests per
//! second, and each stack also runs once without faults per topology, for the `healthy p99`
//! column.

use mesh_examples::args::{ArgError, Args};
use mesh_scenario::{Outcome, ScenarioId, Stack, ms, run_all};

const USAGE: &str = "\
scenario: fault scenarios S1-S4 through round robin, tower's P2C + PeakEwma and the mesh stack,
on simulated endpoints and a paused clock (60 s of virtual time take a few seconds)

USAGE:
    cargo run --release -p mesh-scenario --bin scenario -- [OPTIONS]

OPTIONS:
    --scenario <S1|S2|S3|S4|all>   which scenario to run (default all)
    --stack <NAME|all>             which stack: round_robin, tower_p2c_peak_ewma, mesh or all
                                   (default all)
    --seed <N>                     seed of every random choice: endpoint latencies, balancer
                                   picks, ejection and retry jitter (default 1); one seed
                                   always gives the same numbers
    --json                         print one JSON object per line and per (scenario, stack),
                                   with the fields scenario, stack, p50_ms, p99_ms, p999_ms,
                                   healthy_p99_ms, success_rate, retry_amplification and
                                   bad_endpoint_share; success_rate and bad_endpoint_share are
                                   fractions from 0 to 1 (not percentages)
    --detail                       after the table, each run's per-endpoint share of attempts,
                                   time to ejection and failures by cause (ignored with --json)
    --help                         print this text

SCENARIOS (10 endpoints, log-normal latency with a 5 ms median, 1000 requests/s, 60 s):
    S1  one endpoint 20 x slower from 15 s to 45 s
    S2  one endpoint answers 503 at once from 15 s on
    S3  both, on two endpoints
    S4  two zones of five (the other zone 2 ms further); three of the five local endpoints
        refuse connections from 15 s on

COLUMNS:
    p50, p99, p99.9   latency over all requests, failures included, from the scheduled arrival
    healthy p99       the same stack with no fault
    success           share of 2xx responses
    amplification     attempts at endpoints / requests
    bad share         attempts at a faulty endpoint during its fault / all attempts meanwhile";

struct Options {
    scenarios: Vec<ScenarioId>,
    stacks: Vec<Stack>,
    seed: u64,
    json: bool,
    detail: bool,
}

fn options() -> Result<Options, ArgError> {
    let mut args = Args::parse(std::env::args().skip(1))?;
    let json = args.flag("--json")?;
    let detail = args.flag("--detail")?;
    let scenario: String = args.value("--scenario", "all".to_owned())?;
    let stack: String = args.value("--stack", "all".to_owned())?;
    let seed: u64 = args.value("--seed", 1)?;
    args.finish()?;
    let invalid = |flag: &str, value: &str, reason: String| ArgError::Invalid {
        flag: flag.into(),
        value: value.into(),
        reason,
    };
    let scenarios = if scenario.eq_ignore_ascii_case("all") {
        ScenarioId::ALL.to_vec()
    } else {
        vec![
            scenario
                .parse()
                .map_err(|e| invalid("--scenario", &scenario, e))?,
        ]
    };
    let stacks = if stack == "all" {
        Stack::ALL.to_vec()
    } else {
        vec![stack.parse().map_err(|e| invalid("--stack", &stack, e))?]
    };
    Ok(Options {
        scenarios,
        stacks,
        seed,
        json,
        detail,
    })
}

fn main() {
    let options = mesh_examples::args::or_exit(options(), "scenario", USAGE);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let outcomes = match run_all(&options.scenarios, &options.stacks, options.seed, threads) {
        Ok(outcomes) => outcomes,
        Err(e) => {
            eprintln!("scenario: {e}");
            std::process::exit(1);
        }
    };
    if options.json {
        for outcome in &outcomes {
            println!("{}", outcome.to_json());
        }
        return;
    }
    print_table(&outcomes, options.seed);
    if options.detail {
        for o in &outcomes {
            println!("\n{} {}:\n{}", o.scenario, o.stack, o.report);
        }
    }
}

fn print_table(outcomes: &[Outcome], seed: u64) {
    println!("seed {seed}; latencies in ms, over all requests");
    println!(
        "{:<8} {:<20} {:>7} {:>7} {:>7} {:>11} {:>9} {:>13} {:>9}",
        "scenario",
        "stack",
        "p50",
        "p99",
        "p99.9",
        "healthy p99",
        "success",
        "amplification",
        "bad share"
    );
    for o in outcomes {
        let r = &o.report;
        println!(
            "{:<8} {:<20} {:>7.1} {:>7.1} {:>7.1} {:>11.1} {:>8.3}% {:>13.3} {:>8.2}%",
            o.scenario.name(),
            o.stack.name(),
            ms(r.p50),
            ms(r.p99),
            ms(r.p999),
            ms(o.healthy.p99),
            r.success_rate * 100.0,
            r.retry_amplification,
            r.bad_endpoint_share.unwrap_or(0.0) * 100.0,
        );
    }
}
