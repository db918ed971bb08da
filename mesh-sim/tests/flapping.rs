//! A flapping endpoint behind mesh-balance's outlier ejection: down (answering 503) for 10 s
//! every 90 s, up in between. How long is it kept out of rotation?
//!
//! Ejection lengths grow with a multiplier (`base_ejection × multiplier`, 30 s × n by default).
//! If the multiplier only counts ejections and is forgiven only after a long spell in rotation
//! (5 minutes, the old rule, which `multiplier_decay = max_ejection` reproduces here), a flapping
//! endpoint is never forgiven: each ejection is longer than the last, up to 5 minutes, though the
//! endpoint is up nine tenths of the time. With the default `multiplier_decay` (10 s in rotation
//! takes one off, Envoy's rule) the time it serves between down windows pays the multiplier back,
//! and every ejection lasts the base 30 s.
//!
//! Measured on this scenario (seed 11, 600 s, seven down windows; time out of rotation = the
//! endpoint's quiet time with a 5 s gap): 419 s under the old rule (the code before the decay
//! gave exactly the same figure), 206 s with the decay, that is seven ejections of 30 s ± 10 %.
//! The price: the endpoint is in rotation at the start of each down window, so the decay run
//! fails 35 requests where the old rule failed 25 (of 60 000, without retries).

use std::time::Duration;

use mesh_balance::discover::StaticDiscover;
use mesh_balance::{Balance, BalanceConfig, ConfigError, OutlierConfig};
use mesh_core::Endpoint;
use mesh_sim::{EndpointSpec, Fault, Fleet, Latency, Report, Scenario, seed_for};

type MakeSim = Box<dyn Fn(&Endpoint) -> mesh_sim::SimEndpoint + Send + Sync>;
type Stack = Balance<StaticDiscover, MakeSim>;

const RUN: Duration = Duration::from_secs(600);
const PERIOD: u64 = 90;
const DOWN: u64 = 10;

/// Four endpoints at 100 requests per second; the first is down for 10 s from 30 s, 120 s, …
fn scenario() -> Scenario {
    let s = Duration::from_secs;
    let specs = (0..4u8).map(|i| {
        let spec = EndpointSpec::new(
            Endpoint::new(([10, 0, 0, i + 1], 80).into()),
            Latency::log_normal(Duration::from_millis(5)),
        );
        if i > 0 {
            return spec;
        }
        (0..)
            .map(|k| 30 + k * PERIOD)
            .take_while(|&from| from < RUN.as_secs())
            .fold(spec, |spec, from| {
                spec.fault(Fault::status(503, s(from)).until(s(from + DOWN)))
            })
    });
    // A 5 s quiet gap: P2C over PeakEWMA leaves a healthy endpoint idle for a second now and
    // then, which is not being out of rotation.
    Scenario::new(100.0, RUN)
        .endpoints(specs)
        .seed(11)
        .quiet_gap(Duration::from_secs(5))
}

fn run(outliers: OutlierConfig) -> Report {
    let build = |fleet: &Fleet| -> Result<Stack, ConfigError> {
        let config = BalanceConfig::default()
            .seed(seed_for(fleet.seed(), 100))
            .outliers(outliers);
        Balance::new(
            StaticDiscover::new(fleet.endpoint_list()),
            Box::new(fleet.make_endpoint()),
            config,
        )
    };
    scenario().run(build).unwrap()
}

#[test]
fn a_flapping_endpoint_is_ejected_for_the_base_time_each_time_it_flaps() {
    let windows = RUN.as_secs().saturating_sub(30).div_ceil(PERIOD);
    let old_rule = run(OutlierConfig::default().multiplier_decay(Duration::from_secs(300)));
    let decay = run(OutlierConfig::default());
    eprintln!("old rule:\n{old_rule}\nwith the decay:\n{decay}");
    let (old_out, new_out) = (
        old_rule.endpoints[0].quiet_time,
        decay.endpoints[0].quiet_time,
    );

    // With the decay: one base ejection (30 s ± 10 %) per down window, nothing more.
    let base = Duration::from_secs(30);
    assert!(
        new_out >= base.mul_f64(0.9) * windows as u32
            && new_out <= base.mul_f64(1.1) * windows as u32,
        "{windows} ejections of 30 s ± 10 %: out {new_out:?}"
    );
    // The old rule keeps it out far longer.
    assert!(
        old_out > new_out + Duration::from_secs(120),
        "old rule {old_out:?}, decay {new_out:?}"
    );
    // The healthy endpoints are never out of rotation.
    for report in [&old_rule, &decay] {
        assert!(
            report.endpoints[1..].iter().all(|e| e.quiet_time.is_zero()),
            "{report}"
        );
    }
}
