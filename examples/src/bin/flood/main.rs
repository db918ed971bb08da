//! `flood`: does a proxy give back the memory a connection flood made it take?
//!
//! Opens N plaintext connections to one address (loopback), each left half-done so the server
//! holds per-connection state: in mode `h2`, the HTTP/2 client preface and an empty SETTINGS
//! frame, then nothing; in mode `http1`, an HTTP/1.1 request head of about 30 KB that never ends
//! (no blank line). It holds them a while, closes them all at once, and samples the target
//! process's resident memory (`VmRSS` in `/proc/<pid>/status`) before the flood, at its peak,
//! right after the close and 10 s / 30 s / 60 s later. The question is the last three figures:
//! memory the allocator keeps after the connections are gone is memory the process never uses
//! again until the next flood.
//!
//! Mode `steady` measures the baseline instead: one `GET` per `--interval-ms` (or none, with
//! `--requests 0`) for `--duration` seconds, and the RSS at its start and end.
//!
//! The hold must stay below the server's header read / idle timeouts (mesh-core: 30 s), or the
//! server closes the connections itself; the tool counts those (`closed by server`).
//! Reproduce the BENCHMARKS.md figures with `examples/scripts/flood-memory.sh`.

mod conn;
mod rss;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use mesh_examples::args::{ArgError, Args};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use crate::conn::{Ending, Mode};
use crate::rss::Rss;

const USAGE: &str = "\
flood: open many half-done connections to a server, close them, and sample its memory

USAGE:
    flood --addr <ADDR> --pid <PID> [--mode <h2|http1|steady>] [--connections <N>]
          [--open-rate <N>] [--hold <SECS>] [--head-bytes <N>] [--host <HOST>] [--duration <SECS>]
          [--interval-ms <MS>] [--label <TEXT>]

OPTIONS:
    --addr <ADDR>         the server to flood (loopback, plaintext)
    --pid <PID>           the server's process, whose VmRSS is sampled
    --mode <M>            h2: preface + SETTINGS, then idle (default);
                          http1: an unfinished request head of --head-bytes;
                          steady: GET http://<host>/ every --interval-ms for --duration
    --connections <N>     connections opened (default 9000; needs N + 64 open files)
    --open-rate <N>       connections opened per second (default 1000, so that 9 000 are
                          open within 9 s)
    --hold <SECS>         how long they stay open once all are open (default 10; opening
                          plus hold must stay below the server's idle / header timeouts)
    --head-bytes <N>      size of the unfinished HTTP/1.1 head (default 30000)
    --host <HOST>         Host header of the steady GETs (default web)
    --duration <SECS>     length of the steady run (default 60)
    --interval-ms <MS>    time between steady GETs; 0 sends none, an idle baseline
                          (default 1000)
    --label <TEXT>        first column of the result row (default: the mode)
    --help                print this text";

/// Connections being opened at once: enough to open 9 000 in a few seconds on loopback, few
/// enough that the accept queue (`somaxconn`, often 4 096) never overflows.
const OPEN_PARALLELISM: usize = 64;

/// When the RSS is sampled after the close (the first one is "right after").
const AFTER_CLOSE: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
];

struct Options {
    addr: SocketAddr,
    pid: u32,
    mode: Mode,
    connections: usize,
    open_rate: usize,
    hold: Duration,
    head_bytes: usize,
    host: String,
    duration: Duration,
    interval: Duration,
    label: String,
}

fn options() -> Result<Options, ArgError> {
    let mut args = Args::parse(std::env::args().skip(1))?;
    let addr: Required<SocketAddr> = args.value("--addr", Required(None))?;
    let pid: Required<u32> = args.value("--pid", Required(None))?;
    let mode: Mode = args.value("--mode", Mode::H2)?;
    let connections = args.value("--connections", 9_000)?;
    let open_rate = args.value("--open-rate", 1_000)?;
    let hold = Duration::from_secs(args.value("--hold", 10)?);
    let head_bytes = args.value("--head-bytes", 30_000)?;
    let host = args.value("--host", "web".to_owned())?;
    let duration = Duration::from_secs(args.value("--duration", 60)?);
    let interval = Duration::from_millis(args.value("--interval-ms", 1_000)?);
    let label = args.value("--label", mode.to_string())?;
    args.finish()?;
    Ok(Options {
        addr: addr
            .0
            .ok_or_else(|| ArgError::MissingValue("--addr".into()))?,
        pid: pid
            .0
            .ok_or_else(|| ArgError::MissingValue("--pid".into()))?,
        mode,
        connections,
        open_rate,
        hold,
        head_bytes,
        host,
        duration,
        interval,
        label,
    })
}

/// A flag without a default: `None` until given.
struct Required<T>(Option<T>);

impl<T: FromStr> FromStr for Required<T> {
    type Err = T::Err;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(|v| Required(Some(v)))
    }
}

fn main() {
    let options = mesh_examples::args::or_exit(options(), "flood", USAGE);
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(run(options)));
    if let Err(e) = result {
        eprintln!("flood: {e}");
        std::process::exit(1);
    }
}

async fn run(options: Options) -> Result<(), String> {
    let rss = Rss::of(options.pid)?;
    match options.mode {
        Mode::Steady => steady(&options, &rss).await,
        Mode::H2 | Mode::Http1 => flood(&options, &rss).await,
    }
}

async fn flood(options: &Options, rss: &Rss) -> Result<(), String> {
    let soft = rss::own_nofile_soft();
    if soft < (options.connections + 64) as u64 {
        return Err(format!(
            "the open-file limit is {soft}, too low for {} connections: raise it (`ulimit -n`)",
            options.connections
        ));
    }
    let payload: Arc<[u8]> = options.mode.payload(options.head_bytes).into();
    let before = rss.mib()?;
    eprintln!(
        "flood: {} {} connections to {}; VmRSS before {before:.1} MiB",
        options.connections, options.mode, options.addr
    );

    // The peak: the highest of samples taken every 500 ms from the first open to the close.
    let (close_tx, close_rx) = watch::channel(false);
    let sampler = tokio::spawn(peak_until_close(rss.clone(), close_rx.clone()));

    let permits = Arc::new(Semaphore::new(OPEN_PARALLELISM));
    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let pace = Duration::from_secs_f64(1.0 / options.open_rate.max(1) as f64);
    let mut tasks = Vec::with_capacity(options.connections);
    for i in 0..options.connections {
        // Paced so that the server's listen backlog never overflows (a dropped SYN is retried
        // only after 1 s, 3 s, 7 s …, which would stretch the flood past the idle timeout).
        // Checked every few connections: one timer sleep each would cost more than the pace.
        let due = started + pace * i as u32;
        if i % 16 == 0 && Instant::now() < due {
            tokio::time::sleep_until(due).await;
        }
        let permit = permits.clone().acquire_owned().await;
        let opened = opened_tx.clone();
        let close = close_rx.clone();
        let payload = payload.clone();
        let (addr, mode) = (options.addr, options.mode);
        tasks.push(tokio::spawn(async move {
            let stream = conn::open(addr, mode, &payload).await;
            drop(permit);
            let _ = opened.send(stream.as_ref().map(|_| ()).map_err(|e| e.to_string()));
            // Dropped now: the report loop ends when every connection has reported.
            drop(opened);
            match stream {
                Ok(stream) => conn::hold(stream, close).await,
                Err(_) => Ending::Failed,
            }
        }));
    }
    drop(opened_tx);

    let mut failed = 0;
    let mut first_error = None;
    while let Some(result) = opened_rx.recv().await {
        if let Err(e) = result {
            failed += 1;
            first_error.get_or_insert(e);
        }
    }
    let opened = options.connections - failed;
    let open_time = started.elapsed();
    eprintln!(
        "flood: {opened} open in {:.1} s, {failed} failed{}",
        open_time.as_secs_f64(),
        first_error
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );

    tokio::time::sleep(options.hold).await;
    let _ = close_tx.send(true);
    let closed_at = Instant::now();
    let peak = sampler.await.map_err(|e| e.to_string())??;
    let mut closed_by_server = 0;
    for task in tasks {
        if let Ok(Ending::ClosedByServer) = task.await {
            closed_by_server += 1;
        }
    }
    eprintln!(
        "flood: {closed_by_server} of {opened} were closed by the server before the hold ended"
    );
    let mut after = Vec::new();
    for at in AFTER_CLOSE {
        tokio::time::sleep_until(closed_at + at).await;
        let mib = rss.mib()?;
        eprintln!("flood: VmRSS {mib:.1} MiB {} s after close", at.as_secs());
        after.push(mib);
    }
    println!(
        "| label | N open | open in | closed by server | before | peak | after close | +10 s | +30 s | +60 s |"
    );
    println!(
        "| {} | {opened} | {:.0} s | {closed_by_server} | {before:.0} | {peak:.0} | {} |",
        options.label,
        open_time.as_secs_f64(),
        after
            .iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    Ok(())
}

/// The highest VmRSS sampled every 500 ms until `close` turns true.
async fn peak_until_close(rss: Rss, mut close: watch::Receiver<bool>) -> Result<f64, String> {
    let mut peak = rss.mib()?;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => peak = peak.max(rss.mib()?),
            _ = close.wait_for(|closed| *closed) => return Ok(peak.max(rss.mib()?)),
        }
    }
}

async fn steady(options: &Options, rss: &Rss) -> Result<(), String> {
    let start = rss.mib()?;
    let end_at = Instant::now() + options.duration;
    let (mut sent, mut failed) = (0u64, 0u64);
    while Instant::now() < end_at {
        if options.interval.is_zero() {
            tokio::time::sleep_until(end_at).await;
            break;
        }
        let next = Instant::now() + options.interval;
        match conn::get(options.addr, &options.host).await {
            Ok(200) => sent += 1,
            Ok(_) | Err(_) => failed += 1,
        }
        tokio::time::sleep_until(next).await;
    }
    let end = rss.mib()?;
    println!("| label | requests (ok / failed) | RSS at start | RSS at end | VmHWM |");
    println!(
        "| {} | {sent} / {failed} | {start:.1} | {end:.1} | {:.1} |",
        options.label,
        rss.hwm_mib()?
    );
    Ok(())
}
