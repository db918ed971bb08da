//! The command line of a benchmark run, and the prose of its method for the report.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use mesh_examples::args::{ArgError, Args};

use crate::targets::Target;

/// Rough wall time of the callgrind part per proxy: start under valgrind, 5 500 requests at
/// valgrind's pace, the dump (about 25 s each on a 2-vCPU VM; slower machines take longer).
const CALLGRIND_SECS: f64 = 45.0;

/// A section of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// Fixed-rate latency, CPU and memory.
    Latency,
    /// Closed-loop ceiling.
    Ceiling,
    /// mTLS handshakes per second.
    Handshake,
    /// Memory per idle connection.
    Idle,
    /// `cargo bench` of the crates.
    Micro,
    /// Instructions and cache misses per request under callgrind (mesh-sidecar, hyper-floor).
    Callgrind,
}

impl FromStr for Part {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "latency" => Part::Latency,
            "ceiling" => Part::Ceiling,
            "handshake" => Part::Handshake,
            "idle" => Part::Idle,
            "micro" => Part::Micro,
            "callgrind" => Part::Callgrind,
            other => {
                return Err(format!(
                    "unknown part {other:?} (latency, ceiling, handshake, idle, micro, callgrind)"
                ));
            }
        })
    }
}

/// Everything `--help` lists.
#[derive(Debug)]
pub(crate) struct Options {
    /// Smoke mode.
    pub(crate) quick: bool,
    /// Length of every oha / handshake run.
    pub(crate) duration: Duration,
    /// Repeats of the fixed-rate, ceiling and handshake parts.
    pub(crate) repeats: u32,
    /// Fixed rates, req/s.
    pub(crate) rates: Vec<u32>,
    /// oha connections at a fixed rate.
    pub(crate) connections: usize,
    /// oha connections in the closed loop.
    pub(crate) ceiling_connections: usize,
    /// Concurrent handshake tasks.
    pub(crate) handshake_concurrency: usize,
    /// Idle-connection levels.
    pub(crate) idle_levels: Vec<usize>,
    /// How long the idle connections are held before the last `VmRSS` reading (at least 2 s;
    /// the first reading is at 2 s).
    pub(crate) idle_hold: Duration,
    /// The sections to run, in the order they run.
    pub(crate) parts: Vec<Part>,
    /// The systems measured, in the order of [`Target::ALL`]; `direct` always (the added latency
    /// is measured against it).
    pub(crate) targets: Vec<Target>,
    /// Install missing tools.
    pub(crate) install: bool,
    /// Keep the work directory (configs, logs).
    pub(crate) keep_work: bool,
    /// Report file; default `BENCHMARKS.md` at the workspace root.
    pub(crate) output: Option<PathBuf>,
    /// The arguments as given, for the report.
    pub(crate) command_line: String,
}

/// A comma-separated list: `1000,5000` → `[1000, 5000]`.
pub(crate) fn parse_list<T: FromStr>(text: &str, flag: &str) -> Result<Vec<T>, ArgError>
where
    T::Err: std::fmt::Display,
{
    let items: Result<Vec<T>, ArgError> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|e: T::Err| ArgError::Invalid {
                flag: flag.to_owned(),
                value: text.to_owned(),
                reason: e.to_string(),
            })
        })
        .collect();
    let items = items?;
    if items.is_empty() {
        return Err(ArgError::Invalid {
            flag: flag.to_owned(),
            value: text.to_owned(),
            reason: "empty list".into(),
        });
    }
    Ok(items)
}

impl Options {
    /// Reads the command line (without the program name).
    pub(crate) fn parse(argv: Vec<String>) -> Result<Self, ArgError> {
        let command_line = argv.join(" ");
        let mut args = Args::parse(argv)?;
        let quick = args.flag("--quick")?;
        let skip_micro = args.flag("--skip-micro")?;
        let no_install = args.flag("--no-install")?;
        let keep_work = args.flag("--keep-work")?;
        let duration: u64 = args.value("--duration", if quick { 2 } else { 10 })?;
        let repeats: u32 = args.value("--repeats", if quick { 1 } else { 5 })?;
        let rates: String = args.value("--rates", "1000,5000,10000".to_owned())?;
        let connections: usize = args.value("--connections", 32)?;
        let ceiling_connections: usize = args.value("--ceiling-connections", 64)?;
        let handshake_concurrency: usize = args.value("--handshake-concurrency", 32)?;
        let idle: String = args.value(
            "--idle-levels",
            if quick { "1000" } else { "1000,5000,10000" }.to_owned(),
        )?;
        let idle_hold: u64 = args.value("--idle-hold", if quick { 2 } else { 15 })?;
        let default_parts = if quick {
            "latency,ceiling,handshake,idle"
        } else {
            "latency,ceiling,handshake,idle,micro,callgrind"
        };
        let parts: String = args.value("--parts", default_parts.to_owned())?;
        let targets: String = args.value(
            "--targets",
            "direct,mesh-sidecar,hyper-floor,haproxy,nginx".to_owned(),
        )?;
        let output: String = args.value("--output", String::new())?;
        args.finish()?;
        let mut targets: Vec<Target> = parse_list(&targets, "--targets")?;
        targets.push(Target::Direct);
        targets.sort();
        targets.dedup();
        let mut parts: Vec<Part> = parse_list(&parts, "--parts")?;
        if skip_micro {
            parts.retain(|p| *p != Part::Micro);
        }
        let positive = |flag: &str, v: u64| {
            if v == 0 {
                Err(ArgError::Invalid {
                    flag: flag.into(),
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                })
            } else {
                Ok(())
            }
        };
        positive("--duration", duration)?;
        positive("--repeats", repeats.into())?;
        positive("--connections", connections as u64)?;
        positive("--ceiling-connections", ceiling_connections as u64)?;
        positive("--handshake-concurrency", handshake_concurrency as u64)?;
        Ok(Options {
            quick,
            duration: Duration::from_secs(duration),
            repeats,
            rates: parse_list(&rates, "--rates")?,
            connections,
            ceiling_connections,
            handshake_concurrency,
            idle_levels: parse_list(&idle, "--idle-levels")?,
            idle_hold: Duration::from_secs(idle_hold.max(2)),
            parts,
            targets,
            install: !no_install,
            keep_work,
            output: (!output.is_empty()).then(|| PathBuf::from(output)),
            command_line,
        })
    }

    /// Expected wall time of the measurements (microbenchmarks: a rough 12 minutes including
    /// their compilation). Each run adds about 1.5 s of starting, warming up and stopping.
    pub(crate) fn estimate(&self) -> Duration {
        let run = self.duration.as_secs_f64() + 1.5;
        let r = f64::from(self.repeats);
        let targets = self.targets.len() as f64;
        let proxies = self.proxies().count() as f64;
        let tls = self.tls_targets().count() as f64;
        let mut secs = 0.0;
        for part in &self.parts {
            secs += match part {
                Part::Latency => r * self.rates.len() as f64 * targets * run,
                Part::Ceiling => r * targets * run,
                Part::Handshake => r * tls * run,
                Part::Idle => {
                    proxies * self.idle_levels.len() as f64 * (3.0 + self.idle_hold.as_secs_f64())
                }
                Part::Micro => 720.0,
                Part::Callgrind => CALLGRIND_SECS * self.callgrind_targets().count() as f64,
            };
        }
        Duration::from_secs_f64(secs)
    }

    /// The chosen proxies (every target but `direct`): the idle part measures these.
    pub(crate) fn proxies(&self) -> impl Iterator<Item = Target> + '_ {
        self.targets.iter().copied().filter(|t| t.is_proxy())
    }

    /// The chosen targets the callgrind part runs (mesh-sidecar, hyper-floor: the binaries built
    /// here).
    pub(crate) fn callgrind_targets(&self) -> impl Iterator<Item = Target> + '_ {
        self.targets
            .iter()
            .copied()
            .filter(|t| matches!(t, Target::Sidecar | Target::Floor))
    }

    /// The chosen targets with an mTLS listener (mesh-sidecar, HAProxy): the handshake part.
    pub(crate) fn tls_targets(&self) -> impl Iterator<Item = Target> + '_ {
        self.targets
            .iter()
            .copied()
            .filter(|t| matches!(t, Target::Sidecar | Target::Haproxy))
    }

    /// The method, as lines for the report.
    pub(crate) fn method(&self) -> Vec<String> {
        let secs = self.duration.as_secs();
        vec![
            format!("Build: backend, mesh-sidecar and hyper-floor with the workspace's `{}` profile (release with fat LTO and one codegen unit), as a deployment builds them; HAProxy and nginx are the system's packages.", crate::setup::PROFILE),
            "Everything on 127.0.0.1. Load generators (oha, the handshake client) pinned to CPU 0 with `taskset -c 0`; the proxy under test and the backend pinned to CPU 1 with `taskset -c 1`.".into(),
            "One worker each: mesh-sidecar `--workers 1` (a current-thread runtime), hyper-floor a current-thread runtime, HAProxy `nbthread 1`, nginx `worker_processes 1`, the backend `--workers 1` (a current-thread runtime). Thread counts observed at run time are listed below.".into(),
            format!("Path: oha → proxy → backend over HTTP/1.1 keep-alive on both hops (mesh-sidecar: outbound listener, service with `transport = \"plaintext\"`, `protocol = \"http1\"`, through its full client stack: trace, timeout, retry + budget, balancer, breaker; hyper-floor: hyper 1.x's HTTP/1.1 server and hyper-util's pooled legacy client with no mesh layer, the floor a hyper-based proxy cannot go below; HAProxy `http-reuse always`; nginx upstream `keepalive` with `proxy_http_version 1.1` and an empty `Connection` header). Access logs off everywhere. `direct` is oha → backend. The backend answers `200` with a body of about 10 bytes."),
            format!("Every run starts a fresh backend and a fresh proxy, sends 200 warm-up requests, then measures; targets are interleaved: for each of {} repeat(s), for each rate, every target in turn.", self.repeats),
            format!("Fixed rates {} req/s: `oha -q RATE --latency-correction -z {secs}s -c {}` (latency counted from when each request was due, so stalls are not hidden). Added latency = the target's percentile − the `direct` percentile at the same rate in the same repeat. Tables give the median over repeats and (min–max).", self.rates.iter().map(u32::to_string).collect::<Vec<_>>().join(", "), self.connections),
            "CPU: utime + stime of the proxy's process tree (nginx: master and worker) from `/proc/<pid>/stat` before and after the oha run, divided by `getconf CLK_TCK`, per 100 000 successful requests; the backend's separately. Peak RSS: `VmHWM` from `/proc/<pid>/status` at the end of the run, summed over the tree (for `direct`, the backend's).".into(),
            format!("Ceiling: oha closed loop, `-c {}`, no rate limit, {secs} s per run.", self.ceiling_connections),
            format!("mTLS handshakes: the `bench-e2e --handshake-client` child on CPU 0, {} concurrent tasks for {secs} s, each looping TCP connect → TLS 1.3 handshake (X25519, ECDSA P-256 certificates from one test CA, client certificate required, no session resumption) → `GET /` with `Connection: close` → read to the end. Targets: the mesh-sidecar inbound listener (SPIFFE verification, authorization, then the backend as local app) and an HAProxy frontend `bind … ssl crt … ca-file … verify required ssl-min-ver TLSv1.3` to the same backend. Proxy CPU per handshake from `/proc` as above.", self.handshake_concurrency),
            format!("Idle connections at {}: a freshly started proxy, 200 warm-up requests, `VmRSS` of its tree; then that many plaintext connections (64 being opened at a time), one keep-alive request answered on each, held idle; `VmRSS` again after 2 s and at the end of the hold ({} s); (after − before) / connections still open. The second reading shows memory a proxy frees while its connections idle once the allocator has given it back (mesh-sidecar parks an HTTP/1.1 connection idle for 1 s, freeing hyper's buffers; its jemalloc returns freed pages after about 10 s). mesh-sidecar closes idle connections after 30 s and serves 10 000 at once by default, so levels stay within both; HAProxy `maxconn` and nginx `worker_connections` are set from the open-file limit (below) and exceed the highest level.", self.idle_levels.iter().map(usize::to_string).collect::<Vec<_>>().join(", "), self.idle_hold.as_secs()),
            "Pinning keeps our processes apart, not the rest of the system: other work on the machine shows up as noise.".into(),
            format!("Callgrind (mesh-sidecar and hyper-floor only): a fresh backend, the proxy under `valgrind --tool=callgrind --cache-sim=yes`; {} warm-up requests, counters zeroed (`callgrind_control -z`), {} requests, counters dumped (`callgrind_control -d`); sequential keep-alive `GET /` over {} connections taken in turn; per request = the dump's totals (the whole proxy process) ÷ {}. These counts move by a fraction of a percent between runs where times move by tens of percent.", crate::callgrind::WARM_UP, crate::callgrind::MEASURED, crate::callgrind::CONNECTIONS, crate::callgrind::MEASURED),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Options, ArgError> {
        Options::parse(s.split_whitespace().map(str::to_owned).collect())
    }

    #[test]
    fn defaults_full_and_quick() {
        let full = parse("").unwrap();
        assert_eq!((full.duration.as_secs(), full.repeats), (10, 5));
        assert_eq!(full.rates, vec![1000, 5000, 10000]);
        assert!(full.parts.contains(&Part::Micro) && full.install);
        assert!(full.parts.contains(&Part::Callgrind));
        assert_eq!(full.callgrind_targets().count(), 2);
        let quick = parse("--quick").unwrap();
        assert_eq!((quick.duration.as_secs(), quick.repeats), (2, 1));
        assert_eq!(quick.idle_levels, vec![1000]);
        assert!(!quick.parts.contains(&Part::Micro) && !quick.parts.contains(&Part::Callgrind));
        let over =
            parse("--quick --repeats 2 --rates 500 --skip-micro --parts idle,micro --no-install")
                .unwrap();
        assert_eq!(
            (over.repeats, over.rates.clone(), over.parts.clone()),
            (2, vec![500], vec![Part::Idle])
        );
        assert!(!over.install);
        assert_eq!(full.targets, Target::ALL.to_vec());
        let some = parse("--targets hyper-floor,mesh-sidecar").unwrap();
        assert_eq!(
            some.targets,
            vec![Target::Direct, Target::Sidecar, Target::Floor]
        );
        assert_eq!(some.proxies().count(), 2);
        assert_eq!(
            some.tls_targets().collect::<Vec<_>>(),
            vec![Target::Sidecar]
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(matches!(
            parse("--rates 1000,x"),
            Err(ArgError::Invalid { .. })
        ));
        assert!(matches!(
            parse("--parts latency,speed"),
            Err(ArgError::Invalid { .. })
        ));
        assert!(matches!(
            parse("--targets mesh-sidecar,envoy"),
            Err(ArgError::Invalid { .. })
        ));
        assert!(matches!(
            parse("--duration 0"),
            Err(ArgError::Invalid { .. })
        ));
        assert!(matches!(parse("--rates ,"), Err(ArgError::Invalid { .. })));
        assert_eq!(
            parse("--bogus 1").unwrap_err(),
            ArgError::Unknown("--bogus".into())
        );
        assert_eq!(parse("--help").unwrap_err(), ArgError::Help);
    }

    #[test]
    fn the_full_run_takes_about_40_minutes() {
        let full = parse("").unwrap();
        let minutes = full.estimate().as_secs() / 60;
        assert!((35..=45).contains(&minutes), "{minutes}");
    }
}
