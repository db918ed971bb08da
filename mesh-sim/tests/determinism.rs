//! One seed, one report: a balancer over endpoints with every kind of fault, run twice on its
//! own runtime and once on a test's paused runtime, gives identical reports; another seed does
//! not.

use std::time::Duration;

use mesh_balance::discover::StaticDiscover;
use mesh_balance::{Balance, BalanceConfig, ConfigError};
use mesh_core::Endpoint;
use mesh_sim::{EndpointSpec, Fault, Fleet, Latency, Scenario, seed_for};

type MakeSim = Box<dyn Fn(&Endpoint) -> mesh_sim::SimEndpoint + Send + Sync>;
type Stack = Balance<StaticDiscover, MakeSim>;

fn scenario(seed: u64) -> Scenario {
    let s = Duration::from_secs;
    let faults = [
        Some(Fault::slow(10.0, s(2)).until(s(6))),
        Some(Fault::status(503, s(3))),
        Some(Fault::reset(s(4)).until(s(7))),
        Some(Fault::refuse(s(5))),
        None,
        None,
    ];
    let specs = faults.into_iter().enumerate().map(|(i, fault)| {
        let spec = EndpointSpec::new(
            Endpoint::new(([10, 0, 0, i as u8 + 1], 80).into()),
            Latency::log_normal(Duration::from_millis(4)),
        );
        match fault {
            Some(f) => spec.fault(f),
            None => spec,
        }
    });
    Scenario::new(400.0, s(10)).endpoints(specs).seed(seed)
}

fn build(fleet: &Fleet) -> Result<Stack, ConfigError> {
    let config = BalanceConfig::default().seed(seed_for(fleet.seed(), 100));
    Balance::new(
        StaticDiscover::new(fleet.endpoint_list()),
        Box::new(fleet.make_endpoint()),
        config,
    )
}

#[test]
fn one_seed_one_report() {
    let first = scenario(5).run(build).unwrap();
    let second = scenario(5).run(build).unwrap();
    assert_eq!(first, second);
    assert_eq!(first.requests, 4000);
    // Every kind of fault showed up as a failure of its own kind.
    for cause in ["503", "upstream", "connect"] {
        assert!(first.failures.contains_key(cause), "{first}");
    }
    let other = scenario(6).run(build).unwrap();
    assert_ne!(first.latencies(), other.latencies());
}

#[tokio::test(start_paused = true)]
async fn running_on_a_test_runtime_gives_the_same_report() {
    let here = scenario(5).run_here(build).await.unwrap();
    let own = std::thread::spawn(|| scenario(5).run(build).unwrap())
        .join()
        .unwrap();
    assert_eq!(here, own);
}

#[test]
fn bad_scenarios_are_typed_errors() {
    let empty = Scenario::new(10.0, Duration::from_secs(1));
    assert!(matches!(
        empty.run(build),
        Err(mesh_sim::SimError::Config {
            key: "endpoints",
            ..
        })
    ));
    let zero_rate =
        Scenario::new(0.0, Duration::from_secs(1)).endpoints(scenario(1).endpoint_specs().to_vec());
    assert!(matches!(
        zero_rate.run(build),
        Err(mesh_sim::SimError::Config { key: "rate", .. })
    ));
    let bad_sigma = scenario(1).endpoint(EndpointSpec::new(
        Endpoint::new(([10, 0, 0, 99], 80).into()),
        Latency::LogNormal {
            median: Duration::from_millis(1),
            sigma: -1.0,
        },
    ));
    assert!(matches!(
        bad_sigma.run(build),
        Err(mesh_sim::SimError::Config {
            key: "latency.sigma",
            ..
        })
    ));
    // The builder's own error is passed through.
    let failing_build = scenario(1).run(|fleet: &Fleet| {
        Balance::new(
            StaticDiscover::new(fleet.endpoint_list()),
            Box::new(fleet.make_endpoint()) as MakeSim,
            BalanceConfig::default().max_waiters(0),
        )
    });
    assert!(matches!(failing_build, Err(mesh_sim::SimError::Build(_))));
}
