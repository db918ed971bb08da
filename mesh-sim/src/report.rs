//! What a run measured: [`Report`] and [`EndpointReport`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use mesh_core::Endpoint;

use crate::driver::{RequestOutcome, RequestRecord};
use crate::fault::Fault;

/// The attempt log of one endpoint, as the report needs it.
#[derive(Clone, Debug)]
pub(crate) struct EndpointLog {
    pub(crate) endpoint: Endpoint,
    pub(crate) faults: Vec<Fault>,
    /// Attempt times from the scenario start, in any order.
    pub(crate) attempts: Vec<Duration>,
}

/// One endpoint's part in a run.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EndpointReport {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Requests that reached it (first tries and retries alike).
    pub attempts: u64,
    /// `attempts` over the attempts at every endpoint (0 when there were none).
    pub share: f64,
    /// The start of its earliest fault window; `None` for a healthy endpoint.
    pub fault_start: Option<Duration>,
    /// Attempts that reached it while one of its fault windows was active.
    pub bad_attempts: u64,
    /// How long, after `fault_start`, traffic kept reaching it before it went quiet: see
    /// [`Report`] for the exact definition. `None` for a healthy endpoint, or when it never went
    /// quiet.
    pub time_to_ejection: Option<Duration>,
    /// How long it got no traffic: the summed length of every gap of at least the quiet gap in
    /// the sequence `0, a₁, …, aₖ, end` of its attempts. For an endpoint that steady traffic
    /// would reach many times per quiet gap, this is its time out of rotation (ejected, not
    /// ready, steered around), over the whole run.
    pub quiet_time: Duration,
}

/// The measurements of one run.
///
/// - **Latency** quantiles are exact (nearest rank: the `q`-quantile of `n` sorted latencies is
///   the `⌈q·n⌉`-th) over **all** requests, failed ones included, each with the latency the
///   caller saw (due time to the end of the body or the failure; a timed-out request counts with
///   the timeout). A stack that fails fast cannot look fast by failing.
/// - **Success**: a `2xx` response whose body was read to its end; errors, timeouts and other
///   statuses are failures. `success_rate = successes ÷ requests`.
/// - **Retry amplification** = attempts at endpoints ÷ requests: 1.0 without retries; a stack
///   that sends no request at all (fails fast) can go below 1.
/// - **Bad-endpoint share** = attempts at faulty endpoints *during their fault windows* ÷ all
///   attempts (at any endpoint) made while at least one fault window was active; `None` when no
///   attempt fell in a window. It says how much of the traffic the stack kept sending where it
///   should not while something was wrong.
/// - **Time to ejection** of a faulty endpoint: let `t` be the start of its earliest fault window
///   and `a₁ < … < aₖ` its attempts at or after `t`; in the sequence `t, a₁, …, aₖ, end` (`end`:
///   the end of the scheduled arrivals), take the first point followed by a gap of at least the
///   quiet gap (1 s by default, [`Scenario::quiet_gap`](crate::Scenario::quiet_gap)): the time to
///   ejection is that point minus `t`. So it is the time of the last attempt before the endpoint
///   first went quiet, whether it went quiet by an ejection, a circuit breaker or a load-aware
///   balancer steering around it; `None` when it never had such a gap before the end.
/// - **Quiet time** of any endpoint: the summed gaps of at least the quiet gap between its
///   attempts (from the run's start to the end of the scheduled arrivals); see
///   [`EndpointReport::quiet_time`].
///
/// With no requests, the rates and quantiles are zero.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Report {
    /// Requests sent by the driver.
    pub requests: u64,
    /// Requests that succeeded.
    pub successes: u64,
    /// `successes ÷ requests`, in `[0, 1]`.
    pub success_rate: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// 99.9th percentile latency.
    pub p999: Duration,
    /// Attempts at all endpoints.
    pub attempts: u64,
    /// `attempts ÷ requests`.
    pub retry_amplification: f64,
    /// See the type docs.
    pub bad_endpoint_share: Option<f64>,
    /// Per endpoint, in the order of the scenario's endpoints.
    pub endpoints: Vec<EndpointReport>,
    /// Failed requests by cause: the status (`"503"`), the error kind (`"connect"`, see
    /// [`ErrorKind::as_str`](mesh_core::classify::ErrorKind::as_str)) or `"timed_out"`.
    pub failures: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
}

impl Report {
    pub(crate) fn new(
        records: &[RequestRecord],
        endpoints: Vec<EndpointLog>,
        end: Duration,
        quiet_gap: Duration,
    ) -> Self {
        let requests = records.len() as u64;
        let successes = records.iter().filter(|r| r.outcome.is_success()).count() as u64;
        let mut failures = BTreeMap::new();
        for r in records.iter().filter(|r| !r.outcome.is_success()) {
            let cause = match r.outcome {
                RequestOutcome::Response(status) => status.to_string(),
                RequestOutcome::Error(kind) => kind.as_str().to_owned(),
                RequestOutcome::TimedOut => "timed_out".to_owned(),
            };
            *failures.entry(cause).or_insert(0) += 1;
        }
        let mut latencies: Vec<Duration> = records.iter().map(|r| r.latency).collect();
        latencies.sort_unstable();

        let attempts: u64 = endpoints.iter().map(|e| e.attempts.len() as u64).sum();
        let windows: Vec<Fault> = endpoints.iter().flat_map(|e| e.faults.clone()).collect();
        let in_any_window = |t: Duration| windows.iter().any(|f| f.is_active(t));
        let mut during_faults = 0u64;
        let mut bad_total = 0u64;
        let mut reports = Vec::with_capacity(endpoints.len());
        for log in endpoints {
            let mut times = log.attempts;
            times.sort_unstable();
            during_faults += times.iter().filter(|&&t| in_any_window(t)).count() as u64;
            let bad_attempts = times
                .iter()
                .filter(|&&t| log.faults.iter().any(|f| f.is_active(t)))
                .count() as u64;
            bad_total += bad_attempts;
            let fault_start = log.faults.iter().map(|f| f.from).min();
            let time_to_ejection =
                fault_start.and_then(|start| time_to_ejection(&times, start, end, quiet_gap));
            let quiet_time = quiet_time(&times, end, quiet_gap);
            reports.push(EndpointReport {
                endpoint: log.endpoint,
                attempts: times.len() as u64,
                share: ratio(times.len() as u64, attempts),
                fault_start,
                bad_attempts,
                time_to_ejection,
                quiet_time,
            });
        }

        let mut report = Self {
            requests,
            successes,
            success_rate: ratio(successes, requests),
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            p999: Duration::ZERO,
            attempts,
            retry_amplification: ratio(attempts, requests),
            bad_endpoint_share: (during_faults > 0).then(|| ratio(bad_total, during_faults)),
            endpoints: reports,
            failures,
            latencies,
        };
        report.p50 = report.quantile(0.5);
        report.p99 = report.quantile(0.99);
        report.p999 = report.quantile(0.999);
        report
    }

    /// The exact `q`-quantile of the request latencies (nearest rank), `q` clamped to `[0, 1]`;
    /// zero when there were no requests.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    /// Every request latency, sorted.
    pub fn latencies(&self) -> &[Duration] {
        &self.latencies
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// See [`Report`]: `times` sorted.
fn time_to_ejection(
    times: &[Duration],
    start: Duration,
    end: Duration,
    quiet_gap: Duration,
) -> Option<Duration> {
    if start >= end {
        return None;
    }
    let after = times.iter().copied().filter(|&t| t >= start && t < end);
    let points = std::iter::once(start)
        .chain(after)
        .chain(std::iter::once(end));
    let mut previous = None;
    for point in points {
        if let Some(p) = previous
            && point.saturating_sub(p) >= quiet_gap
        {
            return Some(p - start);
        }
        previous = Some(point);
    }
    None
}

/// See [`EndpointReport::quiet_time`]: `times` sorted.
fn quiet_time(times: &[Duration], end: Duration, quiet_gap: Duration) -> Duration {
    let inside = times.iter().copied().filter(|&t| t < end);
    let points = std::iter::once(Duration::ZERO)
        .chain(inside)
        .chain(std::iter::once(end));
    let mut previous = Duration::ZERO;
    let mut quiet = Duration::ZERO;
    for point in points {
        let gap = point.saturating_sub(previous);
        if gap >= quiet_gap {
            quiet += gap;
        }
        previous = point;
    }
    quiet
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            f,
            "{} requests, success {:.4}, p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, amplification {:.3}",
            self.requests,
            self.success_rate,
            ms(self.p50),
            ms(self.p99),
            ms(self.p999),
            self.retry_amplification,
        )?;
        if let Some(share) = self.bad_endpoint_share {
            writeln!(f, "bad-endpoint share {share:.4}")?;
        }
        for e in &self.endpoints {
            write!(
                f,
                "  {:<21} {:>8} attempts  {:>6.2} %",
                e.endpoint.addr(),
                e.attempts,
                e.share * 100.0
            )?;
            if !e.quiet_time.is_zero() {
                write!(f, "  quiet {:.1} s", e.quiet_time.as_secs_f64())?;
            }
            if let Some(start) = e.fault_start {
                write!(
                    f,
                    "  faulty from {:.1} s, {} bad attempts, ejected after {}",
                    start.as_secs_f64(),
                    e.bad_attempts,
                    e.time_to_ejection
                        .map_or("never".to_owned(), |d| format!("{:.0} ms", ms(d)))
                )?;
            }
            writeln!(f)?;
        }
        if !self.failures.is_empty() {
            writeln!(f, "failures: {:?}", self.failures)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use mesh_core::classify::ErrorKind;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ep(n: u16) -> Endpoint {
        Endpoint::new(([10, 0, 0, 1], n).into())
    }

    #[test]
    fn arithmetic_on_known_inputs() {
        // 1000 requests with latencies 1..=1000 ms; ten fail (five 503s, three refusals, two
        // timeouts).
        let records: Vec<RequestRecord> = (1..=1000u64)
            .map(|i| {
                let outcome = match i {
                    1..=5 => RequestOutcome::Response(503),
                    6..=8 => RequestOutcome::Error(ErrorKind::Connect),
                    9..=10 => RequestOutcome::TimedOut,
                    _ => RequestOutcome::Response(200),
                };
                RequestRecord::new(ms(i), ms(i), outcome)
            })
            .collect();
        // Endpoint A is faulty from 10 s to 20 s; B is healthy.
        let a = EndpointLog {
            endpoint: ep(1),
            faults: vec![Fault::status(503, ms(10_000)).until(ms(20_000))],
            // 5 s, then at 10.0, 10.1, 10.2 s, quiet until 12 s, 15 s, then 25 s.
            attempts: vec![
                ms(5_000),
                ms(10_000),
                ms(10_100),
                ms(10_200),
                ms(12_000),
                ms(15_000),
                ms(25_000),
            ],
        };
        let b = EndpointLog {
            endpoint: ep(2),
            faults: vec![],
            attempts: (0..1093).map(|i| ms(i * 30)).collect(),
        };
        let report = Report::new(&records, vec![a, b], ms(30_000), Duration::from_secs(1));
        assert_eq!(report.requests, 1000);
        assert_eq!(report.successes, 990);
        assert_eq!(report.success_rate, 0.99);
        assert_eq!(report.p50, ms(500));
        assert_eq!(report.p99, ms(990));
        assert_eq!(report.p999, ms(999));
        assert_eq!(report.quantile(1.0), ms(1000));
        assert_eq!(report.quantile(0.0), ms(1));
        assert_eq!(report.attempts, 1100);
        assert_eq!(report.retry_amplification, 1.1);
        assert_eq!(report.failures["503"], 5);
        assert_eq!(report.failures["connect"], 3);
        assert_eq!(report.failures["timed_out"], 2);

        let [a, b] = &report.endpoints[..] else {
            panic!("two endpoints")
        };
        assert_eq!((a.attempts, b.attempts), (7, 1093));
        assert_eq!(a.share, 7.0 / 1100.0);
        assert_eq!(a.fault_start, Some(ms(10_000)));
        // Five of A's attempts fall in [10 s, 20 s).
        assert_eq!(a.bad_attempts, 5);
        // Its last attempt before a 1 s gap is at 10.2 s.
        assert_eq!(a.time_to_ejection, Some(ms(200)));
        assert_eq!(
            (b.fault_start, b.time_to_ejection, b.bad_attempts),
            (None, None, 0)
        );
        // A's gaps of 1 s or more: 0–5 s, 5–10 s, 10.2–12 s, 12–15 s, 15–25 s, 25–30 s.
        assert_eq!(
            a.quiet_time,
            ms(5_000 + 5_000 + 1_800 + 3_000 + 10_000 + 5_000)
        );
        // B has an attempt every 30 ms up to 32.76 s.
        assert_eq!(b.quiet_time, Duration::ZERO);
        // During [10 s, 20 s): A made 5 attempts, B those at multiples of 30 ms in the window
        // (10 020 … 19 980 ms: 333 of them).
        assert_eq!(report.bad_endpoint_share, Some(5.0 / 338.0));
    }

    #[test]
    fn time_to_ejection_edges() {
        let s = Duration::from_secs;
        let gap = s(1);
        // Never quiet: attempts every half second to the end.
        let busy: Vec<Duration> = (0..20).map(|i| ms(i * 500)).collect();
        assert_eq!(time_to_ejection(&busy, s(2), s(10), gap), None);
        // Quiet from the fault start: zero.
        assert_eq!(time_to_ejection(&[ms(500)], s(2), s(10), gap), Some(ms(0)));
        // Quiet only at the end: the last attempt counts when the end is a gap away.
        let until_8: Vec<Duration> = (0..=16).map(|i| ms(i * 500)).collect();
        assert_eq!(time_to_ejection(&until_8, s(2), s(10), gap), Some(s(6)));
        // Fault after the end.
        assert_eq!(time_to_ejection(&[], s(10), s(10), gap), None);
    }

    #[test]
    fn empty_runs_are_zero() {
        let report = Report::new(&[], vec![], ms(1000), ms(1000));
        assert_eq!(report.requests, 0);
        assert_eq!(report.success_rate, 0.0);
        assert_eq!(report.p99, Duration::ZERO);
        assert_eq!(report.retry_amplification, 0.0);
        assert_eq!(report.bad_endpoint_share, None);
    }
}
