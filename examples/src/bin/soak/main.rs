//! `soak`: a long fixed-rate run through two tiers of `mesh-sidecar` while endpoints churn,
//! backends die and certificates rotate, recording memory, file descriptors, panics and every
//! request's outcome (issue 15, item 17). Not run by CI or the tests: a full run takes ten
//! minutes. See `USAGE` (`--help`) for the topology, the schedule and the targets; the recorded
//! runs are in `RELIABILITY.md` at the workspace root.
//!
//! The schedule runs on the main thread against absolute times, so a slow restart delays the
//! next change but not the ones after it; the load runs on its own tokio runtime and never waits
//! for the schedule.

mod load;
mod mesh;
mod options;
mod procfs;
mod report;
mod schedule;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::Request;
use http::header::HOST;
use http_body_util::BodyExt;
use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
use mesh_core::{Body, Endpoint};
use tower::ServiceExt;

use crate::load::{Counters, Counts};
use crate::mesh::Mesh;
use crate::options::{Options, USAGE};
use crate::report::{Run, Sample, Usage};
use crate::schedule::Event;
use mesh_examples::children::{self, KillAllOnDrop};

/// The pause between the end of the load and the last fd count: longer than the 30 s after
/// which mesh-core's servers close idle connections and the 20 s after which its HTTP/1.1
/// clients drop idle ones, so every connection the load opened should be gone.
const QUIET: Duration = Duration::from_secs(40);

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let options = mesh_examples::args::or_exit(Options::parse(argv), "soak", USAGE);
    let guard = KillAllOnDrop;
    children::kill_all_on_signal("soak");
    let result = run(&options);
    drop(guard);
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}

/// Runs the soak; `Ok(passed)`.
fn run(options: &Options) -> Result<bool, String> {
    let bin = children::bin_dir()?;
    for name in ["mesh-sidecar", "backend"] {
        if !bin.join(name).is_file() {
            return Err(format!(
                "{name} not found next to soak in {}; build it first: cargo build -p mesh-examples --bin soak --bin mesh-sidecar --bin backend (add --release for a release run)",
                bin.display()
            ));
        }
    }
    let work = std::env::temp_dir().join(format!("soak-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    eprintln!("soak: configs, certificates and logs in {}", work.display());
    let started = utc_now();
    let load_before = machine_load();
    let mut mesh = Mesh::start(&bin, &work, options.seed)?;
    let names: Vec<String> = mesh.sidecars.iter().map(|s| s.name.clone()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let counters = Arc::new(Counters::default());
    let mut samples = vec![sample(&rt, &mesh, 0, "before load", Counts::default())];
    let duration = Duration::from_secs(options.duration_secs);
    let start = Instant::now();
    let load = rt.spawn(load::run(
        mesh.sidecars[0].outbound,
        options.rate,
        duration,
        options.seed,
        counters.clone(),
    ));
    let mut tally = Tally::default();
    for t in 1..options.duration_secs {
        sleep_until(start + Duration::from_secs(t));
        for event in schedule::events_at(t) {
            match event {
                Event::Sample => {
                    let s = sample(&rt, &mesh, t, "load", counters.snapshot());
                    progress(&s, &names);
                    samples.push(s);
                }
                Event::Endpoints(left_out) => {
                    mesh.write_endpoints(left_out)?;
                    tally.churns += 1;
                }
                Event::RestartBackend(i) => {
                    mesh.restart_backend(i);
                    tally.restarts += 1;
                }
                Event::Rotate => {
                    mesh.rotate()?;
                    tally.rotations += 1;
                }
            }
        }
    }
    sleep_until(start + duration);
    rt.block_on(load)
        .map_err(|e| format!("the load task failed: {e}"))?;
    let end = start.elapsed().as_secs();
    let s = sample(&rt, &mesh, end, "end of load", counters.snapshot());
    progress(&s, &names);
    samples.push(s);
    eprintln!("soak: load done; quiet for {QUIET:?} before the last fd count");
    std::thread::sleep(QUIET);
    let s = sample(
        &rt,
        &mesh,
        start.elapsed().as_secs(),
        "after quiet",
        counters.snapshot(),
    );
    progress(&s, &names);
    samples.push(s);
    let updates: Vec<String> = mesh
        .sidecars
        .iter()
        .map(|s| {
            let (applied, rejected, reasons) = identity_updates(&rt.block_on(metrics(s.admin)));
            let reasons = if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({reasons})")
            };
            format!(
                "{} {applied} applied / {rejected} rejected{reasons}",
                s.name
            )
        })
        .collect();
    let run = Run {
        sidecars: names,
        samples,
        warmup_secs: options.warmup_secs,
        panics: mesh.panics(),
    };
    let passed = run.passed();
    let text = render(
        options,
        &run,
        &mesh,
        &tally,
        &updates,
        &started,
        load_before,
    );
    println!("{text}");
    if let Some(out) = &options.out {
        std::fs::write(out, &text).map_err(|e| format!("{}: {e}", out.display()))?;
        eprintln!("soak: report written to {}", out.display());
    }
    drop(mesh);
    if options.keep_work {
        eprintln!("soak: kept {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(passed)
}

/// How many changes were made.
#[derive(Debug, Default)]
struct Tally {
    churns: u64,
    restarts: u64,
    rotations: u64,
}

fn sleep_until(when: Instant) {
    let now = Instant::now();
    if when > now {
        std::thread::sleep(when - now);
    }
}

fn sample(
    rt: &tokio::runtime::Runtime,
    mesh: &Mesh,
    t: u64,
    phase: &'static str,
    counts: Counts,
) -> Sample {
    let usage = mesh
        .sidecars
        .iter()
        .map(|s| Usage {
            rss_kib: procfs::rss_kib(s.proc.pid()),
            fds: procfs::open_fds(s.proc.pid()),
        })
        .collect();
    let text = rt.block_on(metrics(mesh.sidecars[0].admin));
    let endpoints = metric_sum(&text, "mesh_balance_endpoints", |_| true);
    Sample {
        t,
        phase,
        counts,
        usage,
        endpoints: (!text.is_empty()).then_some(endpoints as u64),
    }
}

fn progress(s: &Sample, names: &[String]) {
    let usage: Vec<String> = names
        .iter()
        .zip(&s.usage)
        .map(|(n, u)| {
            format!(
                "{n} {} KiB/{} fds",
                u.rss_kib.unwrap_or(0),
                u.fds.unwrap_or(0)
            )
        })
        .collect();
    eprintln!(
        "soak: t={}s sent={} answered={} errors={} lost={} endpoints of a={} | {}",
        s.t,
        s.counts.sent,
        s.counts.answered(),
        s.counts.errors(),
        s.counts.lost(),
        s.endpoints.map_or("?".into(), |n| n.to_string()),
        usage.join(", ")
    );
}

/// The `/metrics` text of the sidecar at `admin`; empty when it cannot be read in 10 s.
async fn metrics(admin: SocketAddr) -> String {
    let client = HttpClient::<Body>::new(
        Endpoint::new(admin),
        TcpConnector::new(),
        ClientConfig::default(),
    );
    let Ok(req) = Request::get("http://admin/metrics")
        .header(HOST, "admin")
        .body(Body::empty())
    else {
        return String::new();
    };
    let text = async {
        let res = client.oneshot(req).await.ok()?;
        let body = res.into_body().collect().await.ok()?.to_bytes();
        Some(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), text)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The sum of the samples of `name` in a Prometheus text, over the label sets for which
/// `labels` holds (given the text between the braces, empty without labels).
fn metric_sum(text: &str, name: &str, labels: impl Fn(&str) -> bool) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (set, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.rsplit_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            labels(set).then_some(())?;
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// `mesh_tls_identity_updates_total` in a `/metrics` text: applied, rejected, and the reasons of
/// the rejected ones (`reason×count`).
fn identity_updates(text: &str) -> (f64, f64, String) {
    let name = "mesh_tls_identity_updates_total";
    let applied = metric_sum(text, name, |l| l.contains("outcome=\"applied\""));
    let rejected = metric_sum(text, name, |l| l.contains("outcome=\"rejected\""));
    let reasons: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with(name) && l.contains("outcome=\"rejected\""))
        .filter_map(|l| {
            let reason = l.split("reason=\"").nth(1)?.split('"').next()?;
            let n: f64 = l.rsplit(' ').next()?.parse().ok()?;
            (n > 0.0).then(|| format!("{reason}×{n}"))
        })
        .collect();
    (applied, rejected, reasons.join(" "))
}

fn machine_load() -> Option<f64> {
    procfs::load_average(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// The report: when, where, how, then the tables.
fn render(
    options: &Options,
    run: &Run,
    mesh: &Mesh,
    tally: &Tally,
    updates: &[String],
    started: &str,
    load_before: Option<f64>,
) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = procfs::cpu_model(&cpuinfo).unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let load = |l: Option<f64>| l.map_or("unknown".into(), |l| format!("{l:.2}"));
    let panics: Vec<String> = run.panics.iter().map(|(n, p)| format!("{n} {p}")).collect();
    format!(
        "### Soak run of {started}\n\n\
         - Machine: {cpu}, {cores} CPUs; 1-minute load average {} before the run, {} after it.\n\
         - Build: {build}. Command: `soak {}` (duration {} s, {} req/s, {} % HTTP/2, warm-up {} s, seed {}).\n\
         - Changes made: {} endpoint-file rewrites, {} backend kills and restarts ({} restarts failed), {} leaf + bundle rotations.\n\
         - Identity updates seen by the sidecars (`mesh_tls_identity_updates_total`): {}.\n\
         - `panicked` lines in stderr: sidecars {}; backends {}.\n\
         - Verdict: {}.\n\n{}",
        load(load_before),
        load(machine_load()),
        options.command_line,
        options.duration_secs,
        options.rate,
        load::HTTP2_PERCENT,
        options.warmup_secs,
        options.seed,
        tally.churns,
        tally.restarts,
        mesh.restart_failures,
        tally.rotations,
        updates.join(", "),
        panics.join(", "),
        mesh.backend_panics(),
        if run.passed() {
            "every target passed"
        } else {
            "at least one target FAILED"
        },
        run.markdown()
    )
}

/// Now as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rest = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// The proleptic Gregorian date of a count of days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_day_counts() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_723 + 59), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn metric_sums_over_label_sets() {
        let text = "# TYPE mesh_balance_endpoints gauge\n\
                    mesh_balance_endpoints{service=\"orders\",state=\"active\"} 2\n\
                    mesh_balance_endpoints{service=\"orders\",state=\"ejected\"} 1\n\
                    mesh_balance_endpoint_in_flight{endpoint=\"x\"} 7\n\
                    mesh_tls_identity_updates_total{outcome=\"applied\"} 10\n\
                    mesh_tls_identity_updates_total{outcome=\"rejected\",reason=\"read\"} 0\n\
                    mesh_tls_identity_updates_total{outcome=\"rejected\",reason=\"svid\"} 2\n";
        assert_eq!(metric_sum(text, "mesh_balance_endpoints", |_| true), 3.0);
        assert_eq!(identity_updates(text), (10.0, 2.0, "svid×2".to_owned()));
        assert_eq!(identity_updates(""), (0.0, 0.0, String::new()));
    }

    #[test]
    fn the_usage_names_every_option() {
        for flag in [
            "--duration-secs",
            "--rate",
            "--warmup-secs",
            "--seed",
            "--out",
            "--keep-work",
        ] {
            assert!(USAGE.contains(flag), "{flag}");
        }
    }
}
