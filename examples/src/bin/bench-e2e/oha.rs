//! Driving oha, the HTTP load generator: the command line of a fixed-rate run (with latency
//! correction, so a stall counts against every request that should have been sent during it) and
//! of a closed-loop run, and the figures taken from its JSON report.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::stats::OhaSummary;
use crate::targets::HOST;

/// The arguments of one oha run: `rate` requests/s with latency correction, or as fast as
/// `connections` connections allow when `rate` is `None`.
pub(crate) fn args(
    addr: SocketAddr,
    rate: Option<u32>,
    connections: usize,
    duration: Duration,
) -> Vec<String> {
    let mut args = vec![
        "--no-tui".to_owned(),
        "--output-format".to_owned(),
        "json".to_owned(),
        "-z".to_owned(),
        format!("{}ms", duration.as_millis()),
        "-c".to_owned(),
        connections.to_string(),
        "-H".to_owned(),
        format!("Host: {HOST}"),
    ];
    if let Some(rate) = rate {
        args.extend([
            "-q".to_owned(),
            rate.to_string(),
            "--latency-correction".to_owned(),
        ]);
    }
    args.push(format!("http://{addr}/"));
    args
}

/// Error kinds that only mean "the run ended while this request was in flight".
fn is_deadline(error: &str) -> bool {
    error.to_ascii_lowercase().contains("deadline")
}

/// The figures of one oha JSON report. Latencies are in seconds in oha's JSON.
pub(crate) fn parse(json: &str) -> Result<OhaSummary, String> {
    let v: Value =
        serde_json::from_str(json).map_err(|e| format!("oha output is not JSON: {e}"))?;
    let pct = |key: &str| {
        v["latencyPercentiles"][key]
            .as_f64()
            .ok_or_else(|| format!("oha JSON has no latencyPercentiles.{key}"))
    };
    let total_seconds = v["summary"]["total"]
        .as_f64()
        .ok_or("oha JSON has no summary.total")?;
    let mut ok = 0;
    let mut errors = 0;
    if let Some(codes) = v["statusCodeDistribution"].as_object() {
        for (code, count) in codes {
            let count = count.as_u64().unwrap_or(0);
            if code.starts_with('2') {
                ok += count;
            } else {
                errors += count;
            }
        }
    }
    if let Some(errs) = v["errorDistribution"].as_object() {
        errors += errs
            .iter()
            .filter(|(kind, _)| !is_deadline(kind))
            .map(|(_, n)| n.as_u64().unwrap_or(0))
            .sum::<u64>();
    }
    // With no successful request oha reports null percentiles; NaN keeps the run visible as
    // failed instead of reading as zero latency.
    let or_nan = |r: Result<f64, String>| {
        if ok == 0 {
            Ok(r.unwrap_or(f64::NAN))
        } else {
            r
        }
    };
    Ok(OhaSummary {
        p50: or_nan(pct("p50"))?,
        p99: or_nan(pct("p99"))?,
        p999: or_nan(pct("p99.9"))?,
        ok,
        errors,
        rps: if total_seconds > 0.0 {
            ok as f64 / total_seconds
        } else {
            0.0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"{
      "summary": {"successRate": 1.0, "total": 2.0, "slowest": 0.01, "fastest": 0.0001,
                  "average": 0.0002, "requestsPerSec": 1000.5},
      "latencyPercentiles": {"p10": 0.0001, "p50": 0.00015, "p99": 0.0009, "p99.9": 0.002,
                             "p99.99": 0.004},
      "statusCodeDistribution": {"200": 1990, "503": 4},
      "errorDistribution": {"aborted due to deadline": 7, "connection refused": 2}
    }"#;

    #[test]
    fn figures_from_the_json_report() {
        let s = parse(REPORT).unwrap();
        assert_eq!((s.p50, s.p99, s.p999), (0.00015, 0.0009, 0.002));
        assert_eq!((s.ok, s.errors), (1990, 6));
        assert_eq!(s.rps, 995.0);
    }

    #[test]
    fn a_run_without_success_has_no_latency() {
        let s = parse(
            r#"{"summary": {"total": 1.0}, "latencyPercentiles": {"p50": null},
                         "statusCodeDistribution": {}, "errorDistribution": {"refused": 5}}"#,
        )
        .unwrap();
        assert!(s.p50.is_nan() && s.p999.is_nan());
        assert_eq!((s.ok, s.errors), (0, 5));
        assert!(parse("not json").is_err());
        assert!(parse(r#"{"summary": {}}"#).is_err());
    }

    #[test]
    fn fixed_rate_runs_correct_latency() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let a = args(addr, Some(5000), 32, Duration::from_secs(10)).join(" ");
        assert!(a.contains("-q 5000 --latency-correction") && a.contains("-z 10000ms"));
        assert!(a.ends_with("http://127.0.0.1:8080/"));
        let closed = args(addr, None, 64, Duration::from_secs(1)).join(" ");
        assert!(!closed.contains("-q") && closed.contains("-c 64"));
    }
}
