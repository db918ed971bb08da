//! `demo`: a small multicloud mesh in one process, on loopback, with every mesh-* crate in the path.
//!
//! # Topology
//!
//! Two clouds, each a region with one zone and its own SPIFFE trust domain, with roots from
//! mesh-tls's test CA: **cloud A** (`cloud-a.example`, local to the client) runs three backends —
//! `a1` (fast), `a2-slow` (8 ms, and a long tail: every 10th answer takes 100 ms) and `a3-flaky`
//! (`503`s for 0.8 s of every 4 s) — and **cloud B** (`cloud-b.example`) runs two, `b1` and `b2`, a
//! few milliseconds further away. Every backend is a mesh-core [`Server`]
//! behind a mesh-tls [`TlsAcceptor`](mesh_tls::TlsAcceptor) that trusts both domains' roots and
//! requires a client SVID; each answers with its name in the `x-backend` header.
//!
//! # The client stack
//!
//! One `mesh::ClientBuilder` call assembles it (`mesh.rs`):
//!
//! ```text
//! ClientTraceLayer (mesh-observe: spans, http.client.request.duration)
//!   → RequestTimeoutLayer (1 s overall)
//!   → RetryLayer (3 attempts, 300 ms per try, WindowBudget: 20 % of requests + 10/s over 10 s)
//!   → Balance (P2C over PeakEWMA, locality tiers from cloud A, outlier ejection, seeded)
//!   → per endpoint, built by the balancer's factory:
//!       Tally (the demo's attempt counter, through `wrap_endpoints`) → CircuitBreaker in gate
//!       mode (one per endpoint from the builder's breaker registry) → HttpClient over
//!       TlsConnector (HTTP/2, checks the endpoint's expected SPIFFE ID)
//! ```
//!
//! **Breaker placement.** The breakers are per endpoint, in [gate
//! mode](mesh_retry::breaker::BreakerMode::Gate), inside the balancer's factory: an open breaker
//! makes its endpoint unready, the balancer routes around it, and the locality tiers count it as
//! unhealthy. This composes cleanly because mesh-balance polls each endpoint's readiness and its
//! factory takes each endpoint's breaker from a
//! [`BreakerRegistry`](mesh_retry::breaker::BreakerRegistry) (the balancer rebuilds a service whose
//! readiness failed; the breaker state must survive that).
//! A route-level breaker in fail-fast mode would have turned a local-cloud outage into failed
//! requests instead of a failover.
//!
//! # What it shows
//!
//! Load runs open-loop at `--rate`. Every second a table shows, per endpoint, its share of the
//! attempts, their outcomes, p50 / p99 to the response head and its breaker state; above it, the
//! zone the answers came from, the requests' outcomes, retries (attempts beyond the first) and the
//! retry budget left, and the balancer's ejected count and panic mode. Halfway, cloud A's three
//! backends shut down gracefully and the table shows traffic failing over to cloud B. The run
//! ends with a summary. Prometheus `/metrics` (everything the layers record, through the
//! OpenTelemetry SDK and mesh-observe's exporter) is served on a loopback port meanwhile; its
//! retry counter is scraped once at the end.
//!
//! Not shown: the retry budget's remaining capacity is computed from its window counts
//! ([`WindowBudget::requests`](mesh_retry::budget::WindowBudget::requests) and `retries`) and the
//! configured ratio, since the budget does not expose it directly; per-endpoint ejection is not
//! exposed by mesh-balance, so the table shows the balancer-wide ejected count.

mod backend;
mod load;
mod mesh;
mod table;
mod tally;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
use mesh_core::server::Server;
use mesh_core::{Body, Endpoint};
use mesh_examples::args::{ArgError, Args};
use mesh_examples::logging::LogFormat;
use mesh_observe::prometheus::prometheus_endpoint;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::backend::Backend;
use crate::load::{Board, run_load};
use crate::mesh::{CLOUDS, INSTANCES, Identities, LOCAL, build_stack, locality, spiffe_id};

const USAGE: &str = "\
demo: a small multicloud service mesh in one process, on loopback, built from the mesh-* crates

USAGE:
    cargo run --release -p mesh-examples --bin demo -- [OPTIONS]

OPTIONS:
    --duration <SECONDS>    how long to send load (default 20, at least 4); cloud A's backends
                            are stopped halfway through
    --rate <PER_SECOND>     requests per second, open loop (default 200, 1 to 5000)
    --seed <N>              seed of the balancer, retry jitter and breaker jitter (default 42)
    --metrics-port <PORT>   loopback port for Prometheus /metrics (default 0: any free port)
    --log-format <FORMAT>   text or json (default text, or MESH_LOG_FORMAT) for the log lines on
                            stderr; their level is RUST_LOG's, default warn so the table stays
                            readable (RUST_LOG=info also shows ejections and breaker changes)
    --help                  print this text

WHAT HAPPENS:
    Cloud A (local; trust domain cloud-a.example) runs a1 (fast), a2-slow (8 ms, every 10th
    answer 100 ms) and a3-flaky (503s for 0.8 s of every 4 s); cloud B (cloud-b.example) runs b1 and b2, 8 ms away.
    All talk mTLS with SPIFFE IDs from two federated test CAs. The client sends through
    observe -> timeout -> retry + budget -> balancer (locality tiers, ejection) -> per-endpoint
    breaker -> mTLS client. Every second a table shows per-endpoint share, outcomes, p50/p99,
    breaker state, plus the zone in use, retries, budget left, ejections and panic mode.
    Halfway, cloud A's backends shut down and traffic fails over to cloud B. A summary ends
    the run; /metrics is served on 127.0.0.1 while it runs.";

struct Options {
    duration: Duration,
    rate: u32,
    seed: u64,
    metrics_port: u16,
    log_format: LogFormat,
}

fn options() -> Result<Options, ArgError> {
    let mut args = Args::parse(std::env::args().skip(1))?;
    let seconds: u64 = args.value("--duration", 20)?;
    let rate: u32 = args.value("--rate", 200)?;
    let seed: u64 = args.value("--seed", 42)?;
    let metrics_port: u16 = args.value("--metrics-port", 0)?;
    let log_format = mesh_examples::logging::format_option(&mut args)?;
    args.finish()?;
    if !(4..=3600).contains(&seconds) {
        return Err(ArgError::Invalid {
            flag: "--duration".into(),
            value: seconds.to_string(),
            reason: "must be between 4 and 3600 seconds".into(),
        });
    }
    if !(1..=5_000).contains(&rate) {
        return Err(ArgError::Invalid {
            flag: "--rate".into(),
            value: rate.to_string(),
            reason: "must be between 1 and 5000".into(),
        });
    }
    Ok(Options {
        duration: Duration::from_secs(seconds),
        rate,
        seed,
        metrics_port,
        log_format,
    })
}

#[tokio::main]
async fn main() {
    let options = mesh_examples::args::or_exit(options(), "demo", USAGE);
    mesh_examples::logging::init_with_default(options.log_format, "warn");
    if let Err(e) = run(options).await {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}

async fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    // Metrics: one SDK provider, read by the Prometheus exporter, its meter handed to every layer.
    let (reader, metrics) = prometheus_endpoint()?;
    let provider = SdkMeterProvider::builder().with_reader(reader).build();
    let meter = provider.meter("mesh-demo");
    let metrics_listener = TcpListener::bind(("127.0.0.1", options.metrics_port)).await?;
    let metrics_server = Server::new(metrics_listener);
    let metrics_addr = metrics_server.local_addr()?;
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_task = tokio::spawn(metrics_server.serve_with_shutdown(metrics, async {
        let _ = metrics_stopped.await;
    }));

    let identities = Identities::new();
    let mut backends = Vec::new();
    let mut endpoints = Vec::new();
    for (i, instance) in INSTANCES.iter().enumerate() {
        let backend = Backend::start(
            instance.name,
            instance.behaviour,
            identities.acceptor(i),
            &meter,
        )
        .await?;
        endpoints.push(
            Endpoint::builder(backend.addr())
                .locality(locality(instance.cloud))
                .identity(&spiffe_id(i))
                .build()?,
        );
        backends.push(Some(backend));
    }
    let stack =
        build_stack(&endpoints, &identities, &meter, options.seed).map_err(|e| e.to_string())?;

    println!(
        "mesh demo: {} req/s for {} s, seed {}; client in {} ({}); Prometheus metrics at http://{metrics_addr}/metrics",
        options.rate,
        options.duration.as_secs(),
        options.seed,
        CLOUDS[LOCAL].name,
        CLOUDS[LOCAL].trust_domain,
    );
    for (i, ep) in endpoints.iter().enumerate() {
        println!(
            "  {:<9} {:<8} {}  {}",
            INSTANCES[i].name,
            CLOUDS[INSTANCES[i].cloud].name,
            ep.addr(),
            spiffe_id(i)
        );
    }
    println!();

    let board = Arc::new(Board::default());
    let load = tokio::spawn(run_load(
        stack.client.clone(),
        board.clone(),
        options.rate,
        options.duration,
    ));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let seconds = options.duration.as_secs();
    let kill_at = seconds / 2;
    let mut last_zones = [0; 2];
    let mut stopping = Vec::new();
    for second in 1..=seconds {
        tick.tick().await;
        let up: Vec<bool> = backends.iter().map(Option::is_some).collect();
        last_zones = table::print_second(second, &board, &stack, &up);
        if second == kill_at {
            println!("\n>>> t={second}s: stopping cloud A's backends (graceful shutdown)\n");
            board.after_kill.store(true, Ordering::Relaxed);
            for (i, slot) in backends.iter_mut().enumerate() {
                if INSTANCES[i].cloud == LOCAL
                    && let Some(backend) = slot.take()
                {
                    stopping.push(tokio::spawn(backend.shutdown()));
                }
            }
        }
    }
    load.await?;
    let mut served_by_local = Vec::new();
    for stop in stopping {
        served_by_local.push(stop.await?.map_err(|e| e.to_string())?);
    }
    let scraped = scrape_retries(metrics_addr).await;
    table::print_summary(
        &board,
        &stack.probes,
        last_zones,
        kill_at,
        scraped,
        &metrics_addr,
    );
    println!("  cloud A's backends served {served_by_local:?} requests before they stopped");
    for backend in backends.into_iter().flatten() {
        backend.shutdown().await.map_err(|e| e.to_string())?;
    }
    let _ = stop_metrics.send(());
    metrics_task.await??;
    Ok(())
}

/// Fetches `/metrics` over plain HTTP and sums the `mesh_retry_retries` samples: `(families,
/// retries)`, or the error.
async fn scrape_retries(addr: std::net::SocketAddr) -> Result<(usize, f64), String> {
    let client = HttpClient::<Body>::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default(),
    );
    let req = Request::get(format!("http://{addr}/metrics"))
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let res = client.oneshot(req).await.map_err(|e| e.to_string())?;
    let text = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&text);
    let families = text.lines().filter(|l| l.starts_with("# TYPE")).count();
    let retries = text
        .lines()
        .filter(|l| l.starts_with("mesh_retry_retries"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Ok((families, retries))
}
