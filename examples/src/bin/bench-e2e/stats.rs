//! The numbers of one benchmark run and the arithmetic over them: medians with min–max over
//! repeats, latency added over the direct baseline, CPU per 100k requests, ratios.

use crate::targets::Target;

/// One oha run (fixed rate, or closed loop when `rate` is `None`) against one target.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LoadRun {
    /// Which system.
    pub(crate) target: Target,
    /// Requests per second asked for; `None` for the closed-loop ceiling.
    pub(crate) rate: Option<u32>,
    /// 1-based repeat number.
    pub(crate) repeat: u32,
    /// What oha measured.
    pub(crate) oha: OhaSummary,
    /// CPU seconds of the proxy's process tree during the run (0 for `direct`).
    pub(crate) proxy_cpu: f64,
    /// CPU seconds of the backend during the run.
    pub(crate) backend_cpu: f64,
    /// Peak resident memory of the proxy's tree (VmHWM summed), KiB; the backend's for `direct`.
    pub(crate) peak_rss_kib: u64,
}

/// The figures taken from one oha JSON report.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct OhaSummary {
    /// Latency percentiles in seconds.
    pub(crate) p50: f64,
    /// 99th percentile, seconds.
    pub(crate) p99: f64,
    /// 99.9th percentile, seconds.
    pub(crate) p999: f64,
    /// Responses with a 2xx status.
    pub(crate) ok: u64,
    /// Other statuses plus transport errors (requests cut by the end of the run excluded).
    pub(crate) errors: u64,
    /// Successful requests per second over the run.
    pub(crate) rps: f64,
}

/// One handshake-client run against one target.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HandshakeRun {
    /// Which system.
    pub(crate) target: Target,
    /// Completed handshakes (each with one request).
    pub(crate) completed: u64,
    /// Failed attempts.
    pub(crate) errors: u64,
    /// Length of the run, seconds.
    pub(crate) seconds: f64,
    /// CPU seconds of the proxy's tree during the run.
    pub(crate) proxy_cpu: f64,
}

/// One idle-connection level against one proxy.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct IdleRun {
    /// Which proxy.
    pub(crate) target: Target,
    /// Connections asked for.
    pub(crate) connections: usize,
    /// Connections that got their answer and were held open.
    pub(crate) held: usize,
    /// Resident memory of the proxy's tree before opening them, KiB.
    pub(crate) rss_before_kib: u64,
    /// Resident memory with all of them open and idle for 2 s, KiB.
    pub(crate) rss_after_kib: u64,
    /// Resident memory with all of them still open after the whole hold (`--idle-hold`), KiB:
    /// memory a proxy frees while they idle (mesh-sidecar parks idle HTTP/1.1 connections after
    /// 1 s) shows once the allocator has returned it to the system.
    pub(crate) rss_held_kib: u64,
}

impl IdleRun {
    /// (after 2 s − before) / held, in KiB; `None` if nothing was held.
    pub(crate) fn kib_per_connection(&self) -> Option<f64> {
        self.per_connection(self.rss_after_kib)
    }

    /// (after the whole hold − before) / held, in KiB; `None` if nothing was held.
    pub(crate) fn kib_per_connection_held(&self) -> Option<f64> {
        self.per_connection(self.rss_held_kib)
    }

    fn per_connection(&self, after_kib: u64) -> Option<f64> {
        (self.held > 0).then(|| (after_kib as f64 - self.rss_before_kib as f64) / self.held as f64)
    }
}

/// The median and the range of a few repeats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Spread {
    /// The median (mean of the two middle values for an even count).
    pub(crate) median: f64,
    /// The smallest value.
    pub(crate) min: f64,
    /// The largest value.
    pub(crate) max: f64,
}

/// The spread of `values`; `None` when empty. NaNs are ignored.
pub(crate) fn spread(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

/// Which latency percentile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pct {
    /// p50.
    P50,
    /// p99.
    P99,
    /// p99.9.
    P999,
}

impl Pct {
    /// The three, in table order.
    pub(crate) const ALL: [Pct; 3] = [Pct::P50, Pct::P99, Pct::P999];

    /// The value of this percentile in `oha`, seconds.
    pub(crate) fn of(self, oha: &OhaSummary) -> f64 {
        match self {
            Pct::P50 => oha.p50,
            Pct::P99 => oha.p99,
            Pct::P999 => oha.p999,
        }
    }
}

/// The fixed-rate runs of `target` at `rate`.
pub(crate) fn runs_of(runs: &[LoadRun], target: Target, rate: Option<u32>) -> Vec<&LoadRun> {
    runs.iter()
        .filter(|r| r.target == target && r.rate == rate)
        .collect()
}

/// Latency added by `target` over `direct` at `rate`, per repeat (seconds): the target's
/// percentile minus the direct run's in the same repeat; repeats without a direct run are skipped.
pub(crate) fn added(runs: &[LoadRun], target: Target, rate: u32, pct: Pct) -> Vec<f64> {
    runs_of(runs, target, Some(rate))
        .into_iter()
        .filter_map(|run| {
            let direct = runs.iter().find(|d| {
                d.target == Target::Direct && d.rate == Some(rate) && d.repeat == run.repeat
            })?;
            Some(pct.of(&run.oha) - pct.of(&direct.oha))
        })
        .collect()
}

/// CPU seconds per 100 000 successful requests.
pub(crate) fn cpu_per_100k(cpu_seconds: f64, requests: u64) -> f64 {
    if requests == 0 {
        f64::NAN
    } else {
        cpu_seconds / requests as f64 * 100_000.0
    }
}

/// `ours / theirs`, or `None` when `theirs` is not positive (an added latency within the noise
/// can be zero or negative, and a ratio to it means nothing).
pub(crate) fn ratio(ours: f64, theirs: f64) -> Option<f64> {
    (theirs > 0.0 && ours.is_finite() && theirs.is_finite()).then(|| ours / theirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(target: Target, rate: u32, repeat: u32, p99_ms: f64) -> LoadRun {
        LoadRun {
            target,
            rate: Some(rate),
            repeat,
            oha: OhaSummary {
                p99: p99_ms / 1000.0,
                ok: 1000,
                ..OhaSummary::default()
            },
            proxy_cpu: 0.0,
            backend_cpu: 0.0,
            peak_rss_kib: 0,
        }
    }

    #[test]
    fn medians_and_ranges() {
        let s = spread([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(spread([4.0, 1.0, 3.0, 2.0]).unwrap().median, 2.5);
        assert_eq!(spread([f64::NAN, 5.0]).unwrap().median, 5.0);
        assert!(spread([]).is_none());
    }

    #[test]
    fn added_latency_pairs_repeats() {
        let runs = [
            run(Target::Direct, 1000, 1, 1.0),
            run(Target::Direct, 1000, 2, 2.0),
            run(Target::Sidecar, 1000, 1, 1.5),
            run(Target::Sidecar, 1000, 2, 2.25),
            run(Target::Sidecar, 1000, 3, 9.0), // no direct run in repeat 3
            run(Target::Sidecar, 5000, 1, 7.0),
        ];
        let added = added(&runs, Target::Sidecar, 1000, Pct::P99);
        assert_eq!(added.len(), 2);
        assert!((added[0] - 0.0005).abs() < 1e-12 && (added[1] - 0.00025).abs() < 1e-12);
    }

    #[test]
    fn cpu_and_ratios() {
        assert_eq!(cpu_per_100k(2.0, 200_000), 1.0);
        assert!(cpu_per_100k(1.0, 0).is_nan());
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
        assert_eq!(ratio(3.0, -1.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        let idle = IdleRun {
            target: Target::Nginx,
            connections: 1000,
            held: 1000,
            rss_before_kib: 1000,
            rss_after_kib: 3000,
            rss_held_kib: 1500,
        };
        assert_eq!(idle.kib_per_connection(), Some(2.0));
        assert_eq!(idle.kib_per_connection_held(), Some(0.5));
    }
}
