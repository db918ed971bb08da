//! `demo`: a small mesh on loopback, driven by the mesh-core client and server.
//!
//! It starts three backends with [`mesh_core::server::Server`] (one fast, one slow, one that fails
//! now and then), plus one address where nothing listens. A load generator sends requests at a fixed
//! rate, round robin, through one [`mesh_core::client::HttpClient`] per endpoint (HTTP/2 to the fast
//! one, pooled HTTP/1.1 to the others) behind mesh-core's error-to-response layer, and classifies every
//! answer with mesh-core's classifier. Every second it prints a table per endpoint; halfway through
//! it shuts the slow backend down gracefully (its in-flight requests still complete) and the table shows
//! its traffic turning into `502 connect` answers. At the end it prints a summary.
//!
//! Balancing, retries, mTLS and telemetry join this demo as their crates land.

mod backend;
mod load;

use std::sync::Arc;
use std::time::Duration;

use mesh_core::Endpoint;
use mesh_core::client::{ClientConfig, Protocol};
use mesh_examples::args::{ArgError, Args};
use mesh_examples::stats::fmt_ms;

use crate::backend::{Backend, Behaviour};
use crate::load::{Target, probe, run_load};

const USAGE: &str = "\
demo: a small mesh on loopback, driven by the mesh-core HTTP client and server

USAGE:
    cargo run --release -p mesh-examples --bin demo -- [OPTIONS]

OPTIONS:
    --duration <SECONDS>   how long to send load, in seconds (default 10, at least 2)
    --rate <PER_SECOND>    requests per second, sent round robin over the endpoints (default 200)
    --help                 print this text

WHAT HAPPENS:
    Three backends start on 127.0.0.1 (fast 2 ms, slow 25 ms, flaky: every 4th answer is a 503, every
    8th of those with Retry-After), and one endpoint has nothing listening. Requests go through one
    mesh-core client per endpoint (HTTP/2 to the fast backend, pooled HTTP/1.1 to the others) behind
    the error-to-response layer. Each second a table shows, per endpoint, the requests, their outcome
    by mesh-core's classifier, p50/p99 latency to the end of the body, and connections. Halfway, the
    slow backend drains and stops.";

struct Options {
    duration: Duration,
    rate: u32,
}

fn options() -> Result<Options, ArgError> {
    let mut args = Args::parse(std::env::args().skip(1))?;
    let seconds: u64 = args.value("--duration", 10)?;
    let rate: u32 = args.value("--rate", 200)?;
    args.finish()?;
    if seconds < 2 {
        return Err(ArgError::Invalid {
            flag: "--duration".into(),
            value: seconds.to_string(),
            reason: "must be at least 2 seconds".into(),
        });
    }
    if !(1..=20_000).contains(&rate) {
        return Err(ArgError::Invalid {
            flag: "--rate".into(),
            value: rate.to_string(),
            reason: "must be between 1 and 20000".into(),
        });
    }
    Ok(Options {
        duration: Duration::from_secs(seconds),
        rate,
    })
}

#[tokio::main]
async fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(ArgError::Help) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("demo: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(options).await {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}

async fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let fast = Backend::start("fast", Behaviour::Healthy(Duration::from_millis(2))).await?;
    let slow = Backend::start("slow", Behaviour::Healthy(Duration::from_millis(25))).await?;
    let flaky = Backend::start("flaky", Behaviour::Flaky(Duration::from_millis(2))).await?;
    let gone = backend::unused_address().await?;

    let h1 = ClientConfig::default().max_connections(16);
    let targets = vec![
        Target::new(
            "fast",
            Endpoint::new(fast.addr()),
            h1.clone().protocol(Protocol::Http2),
        ),
        Target::new("slow", Endpoint::new(slow.addr()), h1.clone()),
        Target::new("flaky", Endpoint::new(flaky.addr()), h1.clone()),
        Target::new("gone", Endpoint::new(gone), h1),
    ];
    let targets: Arc<[Target]> = targets.into();
    println!(
        "mesh demo: {} req/s for {} s over {} endpoints (fast {} h2, slow {} h1, flaky {} h1, gone {} h1)\n",
        options.rate,
        options.duration.as_secs(),
        targets.len(),
        fast.addr(),
        slow.addr(),
        flaky.addr(),
        gone
    );

    for target in targets.iter() {
        println!("probe {:<6} -> {}", target.name, probe(target).await);
    }
    println!();
    let load = tokio::spawn(run_load(targets.clone(), options.rate, options.duration));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut slow = Some(slow);
    let seconds = options.duration.as_secs();
    for second in 1..=seconds {
        tick.tick().await;
        print_table(second, &targets);
        if second == seconds / 2
            && let Some(slow) = slow.take()
        {
            let in_flight = slow.in_flight();
            println!("\n>>> draining the slow backend ({in_flight} requests in flight)");
            let report = slow.shutdown().await?;
            println!(
                ">>> slow backend stopped: served {} requests on {} connections, {} failed\n",
                report.served, report.connections, report.failed_in_drain
            );
        }
    }
    let sent = load.await?;
    print_summary(sent, &targets, [&fast, &flaky]);
    fast.shutdown().await?;
    flaky.shutdown().await?;
    Ok(())
}

fn print_table(second: u64, targets: &[Target]) {
    println!(
        "t={second:>3}s  {:<6} {:>5} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>6}",
        "target", "reqs", "ok", "5xx", "ovld", "local", "p50 ms", "p99 ms", "conns"
    );
    for t in targets {
        let mut w = t.stats.rotate();
        let (p50, p99) = (fmt_ms(w.quantile(0.5)), fmt_ms(w.quantile(0.99)));
        println!(
            "        {:<6} {:>5} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>6}",
            t.name,
            w.total(),
            w.success,
            w.failure,
            w.overloaded,
            w.error,
            p50,
            p99,
            t.open_connections(),
        );
    }
}

fn print_summary(sent: u64, targets: &[Target], backends: [&Backend; 2]) {
    println!("\nsummary: {sent} requests sent");
    println!(
        "  {:<6} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "target", "reqs", "ok %", "p50 ms", "p99 ms", "p99.9 ms"
    );
    let mut all = mesh_examples::stats::Window::default();
    for t in targets {
        t.stats.rotate();
        let mut w = t.stats.total();
        all.merge(&w);
        let p50 = fmt_ms(w.quantile(0.5));
        let p99 = fmt_ms(w.quantile(0.99));
        let p999 = fmt_ms(w.quantile(0.999));
        println!(
            "  {:<6} {:>6} {:>8.2} {:>8} {:>8} {:>8}",
            t.name,
            w.total(),
            percent(w.success, w.total()),
            p50,
            p99,
            p999,
        );
    }
    println!(
        "  {:<6} {:>6} {:>8.2}   (ok = 2xx-4xx except 429, by mesh-core's classifier)",
        "all",
        all.total(),
        percent(all.success, all.total())
    );
    for b in backends {
        println!(
            "  backend {:<5} served {:>6} requests on {} connection(s)",
            b.name(),
            b.served(),
            b.connections()
        );
    }
    println!(
        "  'local' answers were produced by the error-to-response layer (mesh-error header), e.g. 502 connect"
    );
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}
