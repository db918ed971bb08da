//! `mesh-sidecar`: a service-mesh sidecar built from the mesh-* crates, configured by one TOML file.
//!
//! ```text
//! inbound  (mTLS, from peer sidecars)
//!   TlsAcceptor → ErrorResponse → AuthzLayer → ServerTraceLayer → ConcurrencyLimit (fixed or
//!   Vegas) → local app, whose trace context names the inbound server span as its parent
//! outbound (plaintext, from the local app)
//!   route by :authority / Host → ClientTrace → RequestTimeout → Retry + WindowBudget → Balance
//!   (locality, ejection; static / file / DNS / xDS discovery) → per-endpoint breaker → HTTP/2
//!   over mTLS
//! admin    (plaintext) /live, /ready, /metrics (with `[xds]`, /ready waits for every xDS-fed
//!          service's first endpoints)
//! ```
//!
//! HTTP/1.1 and HTTP/2 (gRPC) are accepted on every listener; between sidecars everything travels
//! over HTTP/2; to the local app, in the configured `app.protocol`. Identity files are re-read
//! every few seconds (rotation without restart). SIGTERM or Ctrl-C: `/ready` turns 503, every
//! listener stops accepting, in-flight requests finish (bounded by mesh-core's drain timeout), then
//! the process exits 0. A configuration error prints the key and the reason and exits 2; so does
//! an identity file that does not make a usable identity (unreadable, empty, garbage, a key that
//! does not match the certificate, a leaf without a SPIFFE ID, expired or not valid yet, or not
//! accepted by its own trust domain's bundle), naming `identity.cert`, `identity.key` or
//! `identity.bundles."td"` and the file. A setup that starts but is probably a mistake (the own
//! certificate is a CA, no bundle for the own trust domain, a leaf in a bundle file) gets a
//! `warn` log line (`identity setup`). Other failures at startup exit 1.
//!
//! `mesh-sidecar identity init|issue|bundle` makes a local test trust domain, SVIDs and bundles
//! (see `mesh-sidecar identity --help` and the package README's CA-rotation procedure).
//!
//! Once all listeners are bound, one line goes to stdout:
//! `mesh-sidecar: ready inbound=<addr> outbound=<addr> admin=<addr> seed=<n>` (port 0 in the file
//! means any free port; the line gives the real ones).
//!
//! The seed drives every random choice of the outbound stacks: P2C sampling, retry backoff jitter,
//! breaker and ejection jitter. Without `--seed` it is random (from the OS, through `fastrand`'s
//! seeding), so the sidecars of a fleet do not make the same choices in lock-step (a fleet whose
//! every sidecar backs off and probes on the same schedule defeats jitter); the ready line prints
//! it, and `--seed <n>` replays a run.
//!
//! The configuration format is documented on [`mesh_examples::config::SidecarConfig`].

// jemalloc (feature `jemalloc`, default) with background purge threads: after 9 000 flood
// connections close, RSS falls back to ~50 MiB within 10 s, where glibc's malloc keeps 159 MiB
// (idle HTTP/2) or 435 MiB (30 KB HTTP/1.1 heads) for good; BENCHMARKS.md, "Memory after a
// connection flood". `--no-default-features` gives glibc's malloc; `mimalloc` is for comparison.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod identity;
mod inbound;
mod outbound;
mod xds;

use std::collections::HashMap;
use std::num::NonZeroUsize;

use mesh_core::BoxError;
use mesh_core::error::ErrorResponseLayer;
use mesh_core::server::Server;
use mesh_examples::args::{ArgError, Args};
use mesh_examples::config::{self, ConfigError, Sidecar};
use mesh_examples::logging::LogFormat;
use mesh_examples::runtime::{Drain, IdentityFiles, Telemetry, bind, outbound_server_config};
use mesh_examples::stack::build_clients_with_xds;
use tower::Layer;

const USAGE: &str = "\
mesh-sidecar: a service-mesh sidecar (mTLS, authorization, balancing, retries, metrics)

USAGE:
    mesh-sidecar --config <FILE> [--seed <N>] [--workers <N>] [--log-format <text|json>]
    mesh-sidecar identity <init|issue|bundle> ...   (see `mesh-sidecar identity --help`)

OPTIONS:
    --config <FILE>   the TOML configuration (see the mesh_examples::config docs)
    --seed <N>        seed of the balancers, retry and breaker jitter (default: random,
                      printed on the ready line; give it to reproduce a run)
    --workers <N>     runtime worker threads; 1 runs everything on one thread (a
                      current-thread runtime). Default: TOKIO_WORKER_THREADS, else
                      the number of CPUs
    --log-format <F>  `text` (default) or `json` lines on stderr; default from the
                      MESH_LOG_FORMAT environment variable. RUST_LOG filters them
                      (default `info`)
    --help            print this text";

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("identity") {
        std::process::exit(identity::main(args.collect()));
    }
    serve();
}

fn serve() {
    let (path, seed, log_format, workers) =
        mesh_examples::args::or_exit(options(), "mesh-sidecar", USAGE);
    mesh_examples::logging::init(log_format);
    mesh_examples::runtime::block_on("mesh-sidecar", workers, serve_on_runtime(path, seed));
}

async fn serve_on_runtime(path: String, seed: u64) {
    let config = match config::load(std::path::Path::new(&path)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mesh-sidecar: configuration error in {path}: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(config, seed).await {
        if e.is::<ConfigError>() {
            eprintln!("mesh-sidecar: configuration error in {path}: {e}");
            std::process::exit(2);
        }
        eprintln!("mesh-sidecar: {e}");
        std::process::exit(1);
    }
}

fn options() -> Result<(String, u64, LogFormat, NonZeroUsize), ArgError> {
    let mut args = Args::parse(std::env::args().skip(1))?;
    let path: String = args.value("--config", String::new())?;
    // Random by default, so a fleet's sidecars do not jitter in lock-step.
    let seed: u64 = args.value("--seed", fastrand::u64(..))?;
    let log_format = mesh_examples::logging::format_option(&mut args)?;
    let workers = mesh_examples::runtime::workers_option(&mut args)?;
    args.finish()?;
    if path.is_empty() {
        return Err(ArgError::MissingValue("--config".into()));
    }
    Ok((path, seed, log_format, workers))
}

async fn run(config: Sidecar, seed: u64) -> Result<(), BoxError> {
    // Spans are exported only with `[otlp]`, but each hop needs its own span id so that the
    // `traceparent` it sends names this sidecar as the parent; the trace layers below read the
    // tracer set here.
    let telemetry = Telemetry::install("mesh-sidecar", &config.telemetry)?;
    let meter = telemetry.meter().clone();
    let identity = IdentityFiles::load(&config.identity, &meter).await?;

    // One re-check for the connections of every service: the clones share it.
    let connector = identity
        .connector()
        .meter(meter.clone())
        .recheck_connections_on_bundle_change(config.identity.recheck_connections_on_bundle_change);
    let xds = match &config.xds {
        Some(settings) => {
            Some(xds::connect(settings, &config.services, &connector, &meter, seed).await?)
        }
        None => None,
    };
    let clients = build_clients_with_xds(
        &config.services,
        &config.locality,
        &connector,
        &telemetry.client_telemetry(),
        seed,
        xds.as_ref(),
    )?;
    let mut routes = HashMap::new();
    for (service, client) in config.services.iter().zip(clients) {
        for authority in &service.authorities {
            routes.insert(authority.clone(), client.clone());
        }
    }

    let inbound = Server::new(bind(config.inbound, "listeners.inbound").await?)
        .acceptor(
            identity
                .acceptor()
                .meter(meter.clone())
                .recheck_connections_on_bundle_change(
                    config.identity.recheck_connections_on_bundle_change,
                ),
        )
        .config(config.server.clone());
    let outbound = Server::new(bind(config.outbound, "listeners.outbound").await?)
        .config(outbound_server_config(config.server.clone()));
    let admin = Server::new(bind(config.admin, "listeners.admin").await?);
    let addrs = (
        inbound.local_addr()?,
        outbound.local_addr()?,
        admin.local_addr()?,
    );

    let inbound_service = inbound::build(&config, &meter).map_err(|e| e.to_string())?;
    let mut drain = Drain::new();
    drain.spawn(inbound.serve_with_shutdown(inbound_service, drain.stopped()));
    drain.spawn(
        outbound.serve_with_shutdown(
            ErrorResponseLayer::new()
                .describe_with(mesh_tls::failure_detail)
                .layer(outbound::Router::new(
                    routes,
                    config.request_body_idle_timeout,
                )),
            drain.stopped(),
        ),
    );
    drain.spawn(admin.serve_with_shutdown(
        mesh_examples::admin::build(telemetry.metrics(), drain.ready_flag()),
        drain.stopped(),
    ));
    match &xds {
        Some(client) => xds::mark_ready_when_loaded(
            client,
            &config.services,
            drain.ready_flag(),
            drain.stopped(),
        ),
        None => drain.set_ready(),
    }
    println!(
        "mesh-sidecar: ready inbound={} outbound={} admin={} seed={seed}",
        addrs.0, addrs.1, addrs.2
    );
    tracing::info!(
        inbound = %addrs.0,
        outbound = %addrs.1,
        admin = %addrs.2,
        services = ?config.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        identity = %config.identity.cert.display(),
        seed,
        "mesh-sidecar started"
    );

    drain.run_until_signal("mesh-sidecar").await?;
    drop(identity);
    drop(xds);
    telemetry.shutdown().await;
    tracing::info!("mesh-sidecar: stopped");
    Ok(())
}
