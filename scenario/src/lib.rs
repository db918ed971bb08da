//! The S1–S4 fault scenarios of the `scenario` binary, and the three stacks they compare.
//!
//! Every scenario has ten endpoints whose latency is log-normal with a 5 ms median and
//! σ = [`mesh_sim::DEFAULT_SIGMA`] (0.5: p99 ≈ 16 ms, p99.9 ≈ 23 ms), and sends 1000 `GET`
//! requests per second, open loop, for 60 s of virtual time ([`mesh_sim`] on a paused clock).
//! The client runs in zone `zone-a` of region `region-1`.
//!
//! | Scenario | Endpoints | Fault |
//! |----------|-----------|-------|
//! | S1 | ten in `zone-a` | `ep0` is 20 × slower from 15 s to 45 s |
//! | S2 | ten in `zone-a` | `ep0` answers `503` at once from 15 s to the end |
//! | S3 | ten in `zone-a` | both at once, on two endpoints: `ep0` slow as in S1, `ep1` `503` as in S2 |
//! | S4 | five in `zone-a`, five in `zone-b` (median 7 ms: 2 ms more for crossing zones) | `ep0`–`ep2` (three of the five local ones) refuse connections from 15 s to the end |
//!
//! S3 puts the two faults on two endpoints: on one endpoint the `503`s would simply hide the
//! slowness (they come at once).
//!
//! # The stacks
//!
//! - [`Stack::RoundRobin`] (`round_robin`): mesh-balance's [`Balance`] with
//!   [`LoadStrategy::RoundRobin`], ejection off, no locality, no retry: what a plain
//!   client-side list of addresses does.
//! - [`Stack::TowerP2cPeakEwma`] (`tower_p2c_peak_ewma`): the baseline, tower's
//!   `p2c::Balance` over `PeakEwmaDiscover` with tower's usual settings (default RTT 30 ms,
//!   decay 10 s, [`CompleteOnResponse`]) over a `ServiceList` of the endpoints. Its RNG is
//!   seeded through `Balance::from_rng` (a [`tower::util::rng::Rng`] over `fastrand`). No
//!   retries, no ejection, no locality: tower has none of them in its balancer.
//! - [`Stack::Mesh`] (`mesh`): ours, every setting at its library default:
//!   [`RetryLayer`] (3 attempts, 25 ms / 250 ms jittered backoff, 500/502/503/504 and
//!   never-sent failures retried, `GET` being idempotent) with a [`WindowBudget`] (20 % of
//!   requests + 10/s over 10 s), over [`Balance`] (P2C over PeakEWMA to the end of the body,
//!   default outlier ejection: 5 consecutive failures, 30 s base ejection; locality tiers from
//!   the client's zone at the default 70 % threshold). The only scenario-specific setting is the
//!   client's locality. No per-try timeout: S1 shows the balancer steering around the slow
//!   endpoint by itself.
//!
//! Every random choice (endpoint latencies, balancer picks, ejection jitter, retry jitter) is
//! seeded from the one `--seed`, so each figure is reproducible.
//!
//! # What it shows
//!
//! With seed 1, as of this writing: round robin's p99 goes from 17 ms to about 150 ms in S1
//! (a twentieth of all requests hit the slow endpoint), and it fails the faulty endpoints' whole
//! share in S2 and S4. Both P2C + PeakEWMA stacks hold S1's tail at the healthy p99 and p99.9:
//! the slow endpoint's estimate jumps on its first slow answer and it gets a few requests in the
//! next 30 s. tower's balancer, with no ejection, sends the fast-failing `503` endpoint about
//! 17 % of the traffic in S2 (a failure is its cheapest answer) and the refusing endpoints over
//! half of it in S4. The mesh stack ejects them after five failures in a row (tens of
//! milliseconds), retries those few failures within its budget (each retry on an endpoint the
//! request has not tried: mesh-retry marks each retry with mesh-core's `AvoidTried` and the
//! balancer skips the endpoints that request's attempts went to), and in S4 spills the local
//! zone's excess to the other zone.
//!
//! Latencies are whole milliseconds: tokio's timers (and so the simulated endpoints) have
//! millisecond resolution (see [`mesh_sim`]).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use mesh_balance::discover::StaticDiscover;
use mesh_balance::{Balance, BalanceConfig, LoadStrategy, LocalityConfig, OutlierConfig};
use mesh_core::{Endpoint, Locality};
use mesh_retry::budget::WindowBudget;
use mesh_retry::retry::{RetryLayer, RetryPolicy};
use mesh_sim::{EndpointSpec, Fault, Latency, Report, Scenario, SimError, seed_for};
use tower::ServiceBuilder;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover};

/// Endpoints per scenario.
pub const ENDPOINTS: usize = 10;
/// Requests per second.
pub const RATE: f64 = 1000.0;
/// Virtual duration of a run.
pub const DURATION: Duration = Duration::from_secs(60);
/// When every fault starts.
pub const FAULT_START: Duration = Duration::from_secs(15);
/// When S1's (and S3's) slowness ends.
pub const SLOW_END: Duration = Duration::from_secs(45);
/// S1's slow-down factor.
pub const SLOWDOWN: f64 = 20.0;
/// Median latency of an endpoint in the client's zone.
pub const MEDIAN: Duration = Duration::from_millis(5);
/// Median latency of an endpoint in the other zone (S4).
pub const REMOTE_MEDIAN: Duration = Duration::from_millis(7);

/// One of the four scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScenarioId {
    /// One endpoint 20 × slower from 15 s to 45 s.
    S1,
    /// One endpoint answers 503 at once from 15 s.
    S2,
    /// S1 and S2 together, on two endpoints.
    S3,
    /// Two zones; the local one loses three of its five endpoints at 15 s.
    S4,
}

impl ScenarioId {
    /// All four, in order.
    pub const ALL: [ScenarioId; 4] = [Self::S1, Self::S2, Self::S3, Self::S4];

    /// `S1` … `S4`.
    pub fn name(self) -> &'static str {
        match self {
            Self::S1 => "S1",
            Self::S2 => "S2",
            Self::S3 => "S3",
            Self::S4 => "S4",
        }
    }

    /// The scenario, with endpoint latencies seeded from `seed`.
    pub fn scenario(self, seed: u64) -> Scenario {
        let specs = (0..ENDPOINTS).map(|i| {
            let (zone, median) = match self {
                Self::S4 if i >= ENDPOINTS / 2 => ("zone-b", REMOTE_MEDIAN),
                _ => ("zone-a", MEDIAN),
            };
            let spec = EndpointSpec::new(endpoint(i, zone), Latency::log_normal(median));
            let slow = Fault::slow(SLOWDOWN, FAULT_START).until(SLOW_END);
            let unavailable = Fault::status(503, FAULT_START);
            match (self, i) {
                (Self::S1, 0) | (Self::S3, 0) => spec.fault(slow),
                (Self::S2, 0) | (Self::S3, 1) => spec.fault(unavailable),
                (Self::S4, 0..=2) => spec.fault(Fault::refuse(FAULT_START)),
                _ => spec,
            }
        });
        Scenario::new(RATE, DURATION).endpoints(specs).seed(seed)
    }

    /// Which healthy run this scenario compares with: S1–S3 share one topology, S4 has its own.
    fn topology(self) -> u8 {
        match self {
            Self::S4 => 1,
            _ => 0,
        }
    }
}

impl fmt::Display for ScenarioId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ScenarioId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|id| id.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| "expected S1, S2, S3, S4 or all".to_owned())
    }
}

/// The client's locality: region `region-1`, zone `zone-a`.
pub fn client_locality() -> Locality {
    Locality::new("region-1", "zone-a", "")
}

fn endpoint(i: usize, zone: &str) -> Endpoint {
    Endpoint::builder(([10, 0, 0, i as u8 + 1], 8080).into())
        .locality(Locality::new("region-1", zone, ""))
        .build()
        .expect("weight 1 and a plain locality are valid")
}

/// One of the three stacks under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stack {
    /// Round robin, no ejection, no retry.
    RoundRobin,
    /// tower's P2C over PeakEwma.
    TowerP2cPeakEwma,
    /// mesh-balance (PeakEWMA, ejection, locality) under mesh-retry with a budget.
    Mesh,
}

impl Stack {
    /// All three, in order.
    pub const ALL: [Stack; 3] = [Self::RoundRobin, Self::TowerP2cPeakEwma, Self::Mesh];

    /// `round_robin`, `tower_p2c_peak_ewma` or `mesh`.
    pub fn name(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::TowerP2cPeakEwma => "tower_p2c_peak_ewma",
            Self::Mesh => "mesh",
        }
    }

    /// Runs `scenario` through this stack, its random choices seeded from `seed`.
    ///
    /// # Errors
    ///
    /// Only if a stack refuses its settings or the runtime cannot start.
    pub fn run(self, scenario: &Scenario, seed: u64) -> Result<Report, SimError> {
        match self {
            Self::RoundRobin => scenario.run(|fleet| {
                let config = BalanceConfig::default()
                    .seed(seed_for(seed, 100))
                    .load(LoadStrategy::RoundRobin)
                    .outliers(OutlierConfig::disabled());
                Balance::new(
                    StaticDiscover::new(fleet.endpoint_list()),
                    fleet.make_endpoint(),
                    config,
                )
            }),
            Self::TowerP2cPeakEwma => scenario.run(|fleet| {
                let discover = PeakEwmaDiscover::new::<SimRequest>(
                    ServiceList::new::<SimRequest>(fleet.services()),
                    Duration::from_millis(30),
                    Duration::from_secs(10),
                    CompleteOnResponse::default(),
                );
                let rng = SeededRng(fastrand::Rng::with_seed(seed_for(seed, 100)));
                Ok::<_, std::convert::Infallible>(tower::balance::p2c::Balance::from_rng(
                    discover, rng,
                ))
            }),
            Self::Mesh => scenario.run(|fleet| {
                let config = BalanceConfig::default()
                    .seed(seed_for(seed, 100))
                    .locality(LocalityConfig::new(client_locality()));
                let balance = Balance::new(
                    StaticDiscover::new(fleet.endpoint_list()),
                    fleet.make_endpoint(),
                    config,
                )?;
                let policy = RetryPolicy::default().seed(seed_for(seed, 101));
                let retry = RetryLayer::new(policy)?.budget(WindowBudget::default());
                Ok::<_, mesh_balance::ConfigError>(
                    ServiceBuilder::new().layer(retry).service(balance),
                )
            }),
        }
    }
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Stack {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|stack| stack.name() == s)
            .ok_or_else(|| "expected round_robin, tower_p2c_peak_ewma, mesh or all".to_owned())
    }
}

/// What the driver sends.
type SimRequest = http::Request<http_body_util::Empty<bytes::Bytes>>;

/// tower's balancer RNG over a seeded `fastrand` generator.
struct SeededRng(fastrand::Rng);

impl tower::util::rng::Rng for SeededRng {
    fn next_u64(&mut self) -> u64 {
        self.0.u64(..)
    }
}

/// One line of the results: a scenario through a stack, and the same stack without faults.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The scenario.
    pub scenario: ScenarioId,
    /// The stack.
    pub stack: Stack,
    /// The faulty run.
    pub report: Report,
    /// The same stack and topology with no fault.
    pub healthy: Report,
}

impl Outcome {
    /// The line's JSON object, with exactly the fields the issue lists: `scenario`, `stack`,
    /// `p50_ms`, `p99_ms`, `p999_ms`, `healthy_p99_ms`, `success_rate` (a fraction in
    /// `[0, 1]`), `retry_amplification` and `bad_endpoint_share` (a fraction, `null` if no
    /// attempt fell in a fault window).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "scenario": self.scenario.name(),
            "stack": self.stack.name(),
            "p50_ms": ms(self.report.p50),
            "p99_ms": ms(self.report.p99),
            "p999_ms": ms(self.report.p999),
            "healthy_p99_ms": ms(self.healthy.p99),
            "success_rate": self.report.success_rate,
            "retry_amplification": self.report.retry_amplification,
            "bad_endpoint_share": self.report.bad_endpoint_share,
        })
    }
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs every pair of `scenarios` × `stacks`, plus each stack's healthy run per topology (run
/// once and shared by S1–S3), on up to `threads` threads. Results come in the order of the
/// arguments, scenario-major.
///
/// # Errors
///
/// The first run that could not start.
pub fn run_all(
    scenarios: &[ScenarioId],
    stacks: &[Stack],
    seed: u64,
    threads: usize,
) -> Result<Vec<Outcome>, SimError> {
    // Every distinct run: the healthy ones first, keyed by (topology, stack).
    let mut healthy_runs: Vec<(u8, Stack, ScenarioId)> = Vec::new();
    for &id in scenarios {
        for &stack in stacks {
            if !healthy_runs
                .iter()
                .any(|&(t, s, _)| t == id.topology() && s == stack)
            {
                healthy_runs.push((id.topology(), stack, id));
            }
        }
    }
    let mut jobs: Vec<(Scenario, Stack)> = healthy_runs
        .iter()
        .map(|&(_, stack, id)| (id.scenario(seed).healthy(), stack))
        .collect();
    for &id in scenarios {
        for &stack in stacks {
            jobs.push((id.scenario(seed), stack));
        }
    }
    let mut reports = run_jobs(&jobs, seed, threads)?.into_iter();
    let healthy: HashMap<(u8, Stack), Report> = healthy_runs
        .iter()
        .map(|&(t, s, _)| ((t, s), reports.next().expect("one report per job")))
        .collect();
    let mut outcomes = Vec::new();
    for &scenario in scenarios {
        for &stack in stacks {
            outcomes.push(Outcome {
                scenario,
                stack,
                report: reports.next().expect("one report per job"),
                healthy: healthy[&(scenario.topology(), stack)].clone(),
            });
        }
    }
    Ok(outcomes)
}

/// Runs the jobs on up to `threads` threads (each run is single-threaded and deterministic, so
/// the thread count changes nothing but the wall time).
fn run_jobs(
    jobs: &[(Scenario, Stack)],
    seed: u64,
    threads: usize,
) -> Result<Vec<Report>, SimError> {
    let threads = threads.clamp(1, jobs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<Report, SimError>>>> =
        jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((scenario, stack)) = jobs.get(i) else {
                        break;
                    };
                    let result = stack.run(scenario, seed);
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every job ran")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for id in ScenarioId::ALL {
            assert_eq!(id.name().parse::<ScenarioId>(), Ok(id));
        }
        assert_eq!("s2".parse::<ScenarioId>(), Ok(ScenarioId::S2));
        for stack in Stack::ALL {
            assert_eq!(stack.name().parse::<Stack>(), Ok(stack));
        }
        assert!("S5".parse::<ScenarioId>().is_err());
        assert!("p2c".parse::<Stack>().is_err());
    }

    #[test]
    fn scenarios_are_valid_and_have_their_faults() {
        for id in ScenarioId::ALL {
            let scenario = id.scenario(1);
            scenario.validate().unwrap();
            let faulty = scenario
                .endpoint_specs()
                .iter()
                .filter(|s| !s.faults().is_empty())
                .count();
            let expected = match id {
                ScenarioId::S1 | ScenarioId::S2 => 1,
                ScenarioId::S3 => 2,
                ScenarioId::S4 => 3,
            };
            assert_eq!(faulty, expected, "{id}");
            assert!(
                scenario
                    .healthy()
                    .endpoint_specs()
                    .iter()
                    .all(|s| s.faults().is_empty())
            );
        }
    }

    #[test]
    fn json_lines_have_exactly_the_issue_fields() {
        // A one-second run is enough to get real reports.
        let tiny = Scenario::new(50.0, Duration::from_secs(1))
            .endpoints(ScenarioId::S2.scenario(1).endpoint_specs().to_vec());
        let report = Stack::Mesh.run(&tiny, 1).unwrap();
        let outcome = Outcome {
            scenario: ScenarioId::S2,
            stack: Stack::Mesh,
            healthy: report.clone(),
            report,
        };
        let json = outcome.to_json();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "bad_endpoint_share",
                "healthy_p99_ms",
                "p50_ms",
                "p999_ms",
                "p99_ms",
                "retry_amplification",
                "scenario",
                "stack",
                "success_rate",
            ]
        );
        assert_eq!(json["scenario"], "S2");
        assert_eq!(json["stack"], "mesh");
        assert_eq!(json["success_rate"], 1.0);
        // No attempt fell in a fault window (the fault starts at 15 s).
        assert!(json["bad_endpoint_share"].is_null());
        assert!(!json.to_string().contains('\n'));
    }
}
