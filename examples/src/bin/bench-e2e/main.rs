//! `bench-e2e`: the end-to-end comparison of `mesh-sidecar` with HAProxy and nginx on one machine,
//! over loopback, written as a dated report into `BENCHMARKS.md`. Not run by CI or tests: it
//! installs packages, pins processes to CPUs and takes about half an hour.
//!
//! The load generators run on CPU 0, every proxy and the backend on CPU 1 (`taskset`), each proxy
//! with one worker. Each measurement starts a fresh backend and a fresh proxy, so CPU time and
//! peak memory belong to that run only; targets are interleaved within every repeat so slow drift
//! of the machine spreads over all of them. See `USAGE` (`--help`) for the sections and options.

mod callgrind;
mod children;
mod handshake;
mod idle;
mod micro;
mod netio;
mod oha;
mod procfs;
mod report;
mod setup;
mod stats;
mod targets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mesh_examples::args::{ArgError, Args};

use crate::children::{KillAllOnDrop, Proc};
use crate::report::{Meta, Results};
use crate::stats::{HandshakeRun, IdleRun, LoadRun};
use crate::targets::{Env, Running, Target};

mod options;
mod usage;

use options::{Options, Part};

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--handshake-client") {
        std::process::exit(handshake_client(argv[1..].to_vec()));
    }
    let options = mesh_examples::args::or_exit(Options::parse(argv), "bench-e2e", usage::USAGE);
    let guard = KillAllOnDrop;
    children::kill_all_on_signal("bench-e2e");
    let result = run(&options);
    drop(guard);
    if let Err(e) = result {
        eprintln!("bench-e2e: {e}");
        std::process::exit(1);
    }
}

/// The child mode: one handshake-client run, its report as one JSON line on stdout.
fn handshake_client(argv: Vec<String>) -> i32 {
    let parsed = (|| -> Result<_, ArgError> {
        let mut args = Args::parse(argv)?;
        let addr: SocketAddr = args.value("--addr", SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let dir: String = args.value("--dir", String::new())?;
        let concurrency: usize = args.value("--concurrency", 32)?;
        let millis: u64 = args.value("--duration-ms", 1000)?;
        args.finish()?;
        Ok((addr, dir, concurrency, Duration::from_millis(millis)))
    })();
    let (addr, dir, concurrency, duration) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bench-e2e --handshake-client: {e}");
            return 2;
        }
    };
    match handshake::run(addr, Path::new(&dir), concurrency, duration) {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            0
        }
        Err(e) => {
            eprintln!("bench-e2e --handshake-client: {e}");
            1
        }
    }
}

/// Everything one measurement needs.
struct Bench<'a> {
    options: &'a Options,
    env: Env,
    oha: PathBuf,
    ticks: f64,
    notes: Vec<String>,
}

fn run(options: &Options) -> Result<(), String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace directory")?
        .to_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!(
        "bench-e2e: {} run, about {} min of measurement",
        if options.quick { "quick" } else { "full" },
        options.estimate().as_secs().div_ceil(60)
    );
    let tools = setup::ensure_tools(
        options.install,
        &cargo,
        options.parts.contains(&Part::Callgrind),
    )?;
    setup::build_binaries(&cargo, &workspace)?;
    // This binary is `<target dir>/<its profile>/bench-e2e`; the measured ones are in the same
    // target directory, under the profile they were built with.
    let bin_dir = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .and_then(Path::parent)
        .ok_or("no target directory above the current executable")?
        .join(setup::PROFILE);
    let work = std::env::temp_dir().join(format!("bench-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let trust_domain = targets::write_identities(&work)?;
    std::fs::write(work.join("trust-domain"), &trust_domain).map_err(|e| e.to_string())?;
    eprintln!("bench-e2e: configs and logs in {}", work.display());

    let nofile = setup::raise_own_nofile();
    let mut notes = vec![format!(
        "Open-file limit of bench-e2e and every child: {}.",
        children::nofile()
    )];
    let mut bench = Bench {
        options,
        env: Env {
            bin_dir,
            work: work.clone(),
            haproxy: tools.haproxy.clone(),
            nginx: tools.nginx.clone(),
        },
        oha: tools.oha.clone(),
        ticks: setup::clock_ticks(),
        notes: std::mem::take(&mut notes),
    };
    bench.check_workers()?;

    let mut results = Results {
        rates: options.rates.clone(),
        ..Results::default()
    };
    if options.parts.contains(&Part::Latency) {
        results.fixed = bench.load_part()?;
    }
    if options.parts.contains(&Part::Ceiling) {
        results.ceiling = bench.ceiling_part()?;
    }
    if options.parts.contains(&Part::Handshake) {
        results.handshakes = bench.handshake_part()?;
    }
    if options.parts.contains(&Part::Idle) {
        results.idle = bench.idle_part(nofile)?;
    }
    if options.parts.contains(&Part::Callgrind) {
        let valgrind = tools.valgrind.as_deref().ok_or("valgrind missing")?;
        for target in options.callgrind_targets() {
            eprintln!(
                "bench-e2e: {target} under callgrind: {} warm-up and {} measured requests",
                callgrind::WARM_UP,
                callgrind::MEASURED
            );
            let run = callgrind::measure(&bench.env, valgrind, target)?;
            eprintln!(
                "bench-e2e: {target}: {:.0} instructions, {:.0} cycle estimate per request",
                run.event("Ir"),
                run.cycle_estimate()
            );
            results.callgrind.push(run);
        }
    }
    if options.parts.contains(&Part::Micro) {
        results.micro = micro::run(&cargo, &workspace, &work);
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, mo, d, h, mi) = report::utc(now);
    let meta = Meta {
        mode: if options.quick { "quick" } else { "full" }.to_owned(),
        command: format!(
            "cargo run --release -p mesh-examples --bin bench-e2e -- {}",
            options.command_line
        )
        .trim_end()
        .to_owned(),
        date: format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC"),
        environment: setup::environment(&tools),
        parameters: options.method(),
        notes: bench.notes,
    };
    let section = report::render(&meta, &results);
    let path = options
        .output
        .clone()
        .unwrap_or_else(|| workspace.join("BENCHMARKS.md"));
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| report::INTRO.to_owned());
    std::fs::write(&path, report::splice(&existing, &section))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("bench-e2e: wrote {}", path.display());
    if !options.keep_work {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}

/// A small current-thread runtime for the in-process clients (warm-up, idle connections).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(f)
}

/// CPU seconds of `proc`'s tree so far.
fn cpu_seconds(proc: &Proc, ticks: f64) -> f64 {
    procfs::tree_cpu_ticks(proc.pid()) as f64 / ticks
}

impl Bench<'_> {
    /// Starts the backend and `target` and sends a few requests through.
    fn start(&self, target: Target) -> Result<(targets::Backend, Running), String> {
        let backend = targets::start_backend(&self.env)?;
        let running = targets::start(&self.env, target, &backend)?;
        block_on(idle::warm_up(running.plain, 200))?;
        Ok((backend, running))
    }

    /// Records how many threads each server runs (the one-worker settings, checked at run time).
    fn check_workers(&mut self) -> Result<(), String> {
        for target in self.options.targets.clone() {
            let (backend, running) = self.start(target)?;
            let proc = running.proc.as_ref().unwrap_or(&backend.proc);
            let pids = mesh_examples::children::process_tree(proc.pid());
            let threads: Vec<String> = pids.iter().flat_map(|&p| procfs::thread_names(p)).collect();
            let what = match target {
                Target::Direct => "backend".to_owned(),
                _ => target.to_string(),
            };
            let remark = match target {
                Target::Sidecar => {
                    "; tokio gives its blocking-pool threads (file reads) the same name as its one worker"
                }
                Target::Nginx => "; master and one worker",
                Target::Floor => "; a current-thread runtime",
                _ => "",
            };
            self.notes.push(format!(
                "{what}: {} process(es), {} thread(s) at run time ({}){remark}.",
                pids.len(),
                threads.len(),
                procfs::summarize_names(&threads)
            ));
        }
        Ok(())
    }

    /// One oha run against a fresh `target`; `None` (with a warning) if it failed.
    fn measure_load(
        &mut self,
        target: Target,
        rate: Option<u32>,
        repeat: u32,
    ) -> Result<Option<LoadRun>, String> {
        let (backend, running) = self.start(target)?;
        std::thread::sleep(Duration::from_millis(200));
        let connections = if rate.is_some() {
            self.options.connections
        } else {
            self.options.ceiling_connections
        };
        let proxy_cpu0 = running.proc.as_ref().map(|p| cpu_seconds(p, self.ticks));
        let backend_cpu0 = cpu_seconds(&backend.proc, self.ticks);
        let out = children::spawn("oha", &self.oha, &self.env.work)
            .args(oha::args(
                running.plain,
                rate,
                connections,
                self.options.duration,
            ))
            .cpu(0)
            .output(self.options.duration + Duration::from_secs(60));
        let proxy_cpu = running
            .proc
            .as_ref()
            .map(|p| cpu_seconds(p, self.ticks))
            .zip(proxy_cpu0);
        let backend_cpu = cpu_seconds(&backend.proc, self.ticks) - backend_cpu0;
        let peak_of = running.proc.as_ref().unwrap_or(&backend.proc);
        let peak_rss_kib = procfs::tree_status_kib(peak_of.pid(), "VmHWM");
        let label = format!(
            "{target} rate={} repeat={repeat}",
            rate.map_or("max".to_owned(), |r| r.to_string())
        );
        let summary = match out.and_then(|json| oha::parse(&json)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("bench-e2e: {label}: {e}");
                self.notes.push(format!(
                    "run {label} failed and is left out: {}",
                    e.lines().next().unwrap_or("")
                ));
                return Ok(None);
            }
        };
        eprintln!(
            "bench-e2e: {label}: {:.0} req/s p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs errors {}",
            summary.rps,
            summary.p50 * 1e6,
            summary.p99 * 1e6,
            summary.p999 * 1e6,
            summary.errors
        );
        Ok(Some(LoadRun {
            target,
            rate,
            repeat,
            oha: summary,
            proxy_cpu: proxy_cpu.map_or(0.0, |(after, before)| after - before),
            backend_cpu,
            peak_rss_kib,
        }))
    }

    /// Fixed rates: repeat → rate → target, interleaved.
    fn load_part(&mut self) -> Result<Vec<LoadRun>, String> {
        let mut runs = Vec::new();
        for repeat in 1..=self.options.repeats {
            for rate in self.options.rates.clone() {
                for target in self.options.targets.clone() {
                    runs.extend(self.measure_load(target, Some(rate), repeat)?);
                }
            }
        }
        Ok(runs)
    }

    /// Closed loop: repeat → target.
    fn ceiling_part(&mut self) -> Result<Vec<LoadRun>, String> {
        let mut runs = Vec::new();
        for repeat in 1..=self.options.repeats {
            for target in self.options.targets.clone() {
                runs.extend(self.measure_load(target, None, repeat)?);
            }
        }
        Ok(runs)
    }

    /// mTLS handshakes: repeat → (mesh-sidecar inbound, HAProxy `ssl` frontend).
    fn handshake_part(&mut self) -> Result<Vec<HandshakeRun>, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut runs = Vec::new();
        for repeat in 1..=self.options.repeats {
            let tls_targets: Vec<Target> = self.options.tls_targets().collect();
            for target in tls_targets {
                let (_backend, running) = self.start(target)?;
                let (Some(proc), Some(tls)) = (running.proc.as_ref(), running.tls) else {
                    return Err(format!("{target} has no TLS listener"));
                };
                let cpu0 = cpu_seconds(proc, self.ticks);
                let out = children::spawn("handshake-client", &exe, &self.env.work)
                    .args([
                        "--handshake-client".to_owned(),
                        "--addr".to_owned(),
                        tls.to_string(),
                    ])
                    .args(["--dir".into(), self.env.work.clone().into_os_string()])
                    .args([
                        "--concurrency".to_owned(),
                        self.options.handshake_concurrency.to_string(),
                        "--duration-ms".to_owned(),
                        self.options.duration.as_millis().to_string(),
                    ])
                    .cpu(0)
                    .output(self.options.duration + Duration::from_secs(60));
                let proxy_cpu = cpu_seconds(proc, self.ticks) - cpu0;
                let report: handshake::HandshakeReport = match out
                    .and_then(|json| serde_json::from_str(json.trim()).map_err(|e| e.to_string()))
                {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("bench-e2e: handshakes {target} repeat={repeat}: {e}");
                        self.notes.push(format!(
                            "handshake run {target} repeat={repeat} failed and is left out"
                        ));
                        continue;
                    }
                };
                eprintln!(
                    "bench-e2e: handshakes {target} repeat={repeat}: {:.0}/s errors {}{}",
                    report.completed as f64 / report.seconds,
                    report.errors,
                    report
                        .first_error
                        .as_deref()
                        .map_or(String::new(), |e| format!(" (first: {e})"))
                );
                if let Some(e) = &report.first_error {
                    self.notes.push(format!(
                        "handshakes {target} repeat={repeat}: first error: {e}"
                    ));
                }
                runs.push(HandshakeRun {
                    target,
                    completed: report.completed,
                    errors: report.errors,
                    seconds: report.seconds,
                    proxy_cpu,
                });
            }
        }
        Ok(runs)
    }

    /// Idle connections: proxy → level, each level on a freshly started proxy.
    fn idle_part(&mut self, nofile: u64) -> Result<Vec<IdleRun>, String> {
        let mut runs = Vec::new();
        let proxies: Vec<Target> = self.options.proxies().collect();
        for target in proxies {
            for &level in &self.options.idle_levels {
                if level as u64 + 200 > nofile {
                    self.notes.push(format!(
                        "idle level {level} skipped: this process may open only {nofile} files (install prlimit or raise `ulimit -n`)"
                    ));
                    continue;
                }
                let (_backend, running) = self.start(target)?;
                let proc = running.proc.as_ref().ok_or("a proxy has a process")?;
                std::thread::sleep(Duration::from_millis(500));
                let before = procfs::tree_status_kib(proc.pid(), "VmRSS");
                let started = std::time::Instant::now();
                let (streams, first_error) =
                    block_on(idle::open(running.plain, level, Duration::from_secs(10)));
                let opening = started.elapsed();
                std::thread::sleep(Duration::from_secs(2));
                let after = procfs::tree_status_kib(proc.pid(), "VmRSS");
                std::thread::sleep(
                    self.options
                        .idle_hold
                        .saturating_sub(Duration::from_secs(2)),
                );
                let held_rss = procfs::tree_status_kib(proc.pid(), "VmRSS");
                // Still open = nothing to read yet (a closed one reads EOF); the streams are
                // non-blocking.
                let mut scratch = [0u8; 1];
                let held = streams
                    .iter()
                    .filter(|s| {
                        let mut s: &std::net::TcpStream = s;
                        matches!(std::io::Read::read(&mut s, &mut scratch), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                    })
                    .count();
                drop(streams);
                if let Some(e) = first_error {
                    self.notes.push(format!(
                        "idle {target} {level}: some connections failed (first: {e})"
                    ));
                }
                eprintln!(
                    "bench-e2e: idle {target} {level}: held {held}, RSS {before} → {after} KiB at 2 s, {held_rss} KiB at {} s (opened in {:.1} s)",
                    self.options.idle_hold.as_secs(),
                    opening.as_secs_f64()
                );
                runs.push(IdleRun {
                    target,
                    connections: level,
                    held,
                    rss_before_kib: before,
                    rss_after_kib: after,
                    rss_held_kib: held_rss,
                });
            }
        }
        Ok(runs)
    }
}
