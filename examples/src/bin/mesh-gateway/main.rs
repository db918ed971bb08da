//! `mesh-gateway`: an edge gateway built from the mesh-* crates, configured by one TOML file.
//!
//! ```text
//! public (HTTP/1.1 and HTTP/2; TLS with an ordinary server certificate when `[tls]` is set)
//!   x-request-id → ErrorResponse → RateLimit (per client IP or header; 429 + Retry-After)
//!   → route by host, then longest path prefix (404 if none) → header add / remove
//!   → the service's client stack (ClientTrace → RequestTimeout → Retry + budget → Balance
//!     → per-endpoint breaker → HTTP/2 over mTLS with the gateway's mesh identity)
//! admin  (plaintext) /live, /ready, /metrics
//! ```
//!
//! Request ids: a client's `x-request-id` of 1 to 128 visible ASCII characters is kept, anything
//! else replaced by 128 random bits in hex; the id goes upstream and is echoed on the response.
//!
//! SIGTERM or Ctrl-C: `/ready` turns 503, the listeners stop accepting, in-flight requests finish,
//! the process exits 0. A configuration error prints the key and the reason and exits 2, as do
//! unusable identity files (see the sidecar's docs: the same checks and warnings).
//!
//! Once both listeners are bound, one line goes to stdout:
//! `mesh-gateway: ready public=<addr> admin=<addr> seed=<n>` (the seed, random unless `--seed`
//! gives one, so that a run can be reproduced).
//!
//! TLS termination (`[tls]`, PEM chain and key): TLS 1.3 and 1.2, ALPN `h2` and `http/1.1`; a chain
//! and key that cannot be read or do not fit together are a configuration error (exit 2).
//!
//! The configuration format is documented on [`mesh_examples::gateway_config`].

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

mod request_id;
mod router;
mod tls;

use std::num::NonZeroUsize;

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::error::ErrorResponseLayer;
use mesh_core::server::Server;
use mesh_core::{Body, BoxError};
use mesh_examples::args::{ArgError, Args};
use mesh_examples::gateway_config::{self, Gateway, RateKey};
use mesh_examples::logging::LogFormat;
use mesh_examples::runtime::{Drain, IdentityFiles, Telemetry, bind};
use mesh_examples::stack::build_clients;
use mesh_retry::limit::rate::{HeaderKey, PeerIp};
use mesh_retry::limit::{RateLimitConfig, RateLimitLayer};
use opentelemetry::metrics::Meter;
use tower::util::BoxCloneService;
use tower::{Layer, ServiceBuilder};

use crate::router::Router;

const USAGE: &str = "\
mesh-gateway: an edge gateway (routing, rate limits, request ids, mTLS to upstreams)

USAGE:
    mesh-gateway --config <FILE> [--seed <N>] [--workers <N>] [--log-format <text|json>]

OPTIONS:
    --config <FILE>   the TOML configuration (see the mesh_examples::gateway_config docs)
    --seed <N>        seed of the balancers, retry jitter and request ids (default: random,
                      printed on the ready line)
    --workers <N>     runtime worker threads; 1 runs everything on one thread (a
                      current-thread runtime). Default: TOKIO_WORKER_THREADS, else
                      the number of CPUs
    --log-format <F>  `text` (default) or `json` lines on stderr; default from the
                      MESH_LOG_FORMAT environment variable. RUST_LOG filters them
                      (default `info`)
    --help            print this text";

fn main() {
    let (path, seed, log_format, workers) =
        mesh_examples::args::or_exit(options(), "mesh-gateway", USAGE);
    mesh_examples::logging::init(log_format);
    mesh_examples::runtime::block_on("mesh-gateway", workers, serve(path, seed));
}

async fn serve(path: String, seed: u64) {
    let config = match gateway_config::load(std::path::Path::new(&path)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mesh-gateway: configuration error in {path}: {e}");
            std::process::exit(2);
        }
    };
    let tls = match &config.tls {
        None => None,
        Some(files) => match tls::ServerTlsAcceptor::from_pem_files(&files.cert, &files.key) {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                eprintln!("mesh-gateway: configuration error in {path}: {e}");
                std::process::exit(2);
            }
        },
    };
    if let Err(e) = run(config, tls, seed).await {
        if e.is::<gateway_config::ConfigError>() {
            eprintln!("mesh-gateway: configuration error in {path}: {e}");
            std::process::exit(2);
        }
        eprintln!("mesh-gateway: {e}");
        std::process::exit(1);
    }
}

fn options() -> Result<(String, u64, LogFormat, NonZeroUsize), ArgError> {
    let mut args = Args::parse(std::env::args().skip(1))?;
    let path: String = args.value("--config", String::new())?;
    // Request ids must differ between gateway instances, so the default seed is random.
    let seed: u64 = args.value("--seed", fastrand::u64(..))?;
    let log_format = mesh_examples::logging::format_option(&mut args)?;
    let workers = mesh_examples::runtime::workers_option(&mut args)?;
    args.finish()?;
    if path.is_empty() {
        return Err(ArgError::MissingValue("--config".into()));
    }
    Ok((path, seed, log_format, workers))
}

type Routed = BoxCloneService<Request<Incoming>, Response<Body>, BoxError>;

/// The router behind the configured rate limit (if any).
fn limited(config: &Gateway, router: Router, meter: &Meter) -> Result<Routed, BoxError> {
    let Some(limit) = &config.rate_limit else {
        return Ok(BoxCloneService::new(router));
    };
    let mut settings = RateLimitConfig::per_second(limit.per_second)
        .name("gateway")
        .meter(meter.clone());
    if let Some(burst) = limit.burst {
        settings = settings.burst(burst);
    }
    let layer = RateLimitLayer::new(settings)?;
    Ok(match &limit.key {
        RateKey::Header(name) => {
            BoxCloneService::new(layer.keyed_by(HeaderKey(name.clone())).layer(router))
        }
        _ => BoxCloneService::new(layer.keyed_by(PeerIp).layer(router)),
    })
}

async fn run(
    config: Gateway,
    tls: Option<tls::ServerTlsAcceptor>,
    seed: u64,
) -> Result<(), BoxError> {
    // Before any trace layer is built: each request's client span gets ids of its own.
    let telemetry = Telemetry::install("mesh-gateway", &config.telemetry)?;
    let meter = telemetry.meter().clone();
    let identity = IdentityFiles::load(&config.identity, &meter).await?;

    let connector = identity.connector();
    let clients = build_clients(
        &config.services,
        &config.locality,
        &connector,
        &telemetry.client_telemetry(),
        seed,
    )?;
    let router = Router::new(
        config.routes.clone(),
        clients,
        config.request_body_idle_timeout,
    );
    let edge = ServiceBuilder::new()
        .layer(ErrorResponseLayer::new().describe_with(mesh_tls::failure_detail))
        .service(limited(&config, router, &meter).map_err(|e| format!("rate_limit: {e}"))?);
    let edge = request_id::layer(BoxCloneService::new(edge), seed);

    let public =
        Server::new(bind(config.public, "listeners.public").await?).config(config.server.clone());
    let admin = Server::new(bind(config.admin, "listeners.admin").await?);
    let addrs = (public.local_addr()?, admin.local_addr()?);

    let mut drain = Drain::new();
    match tls {
        Some(acceptor) => drain.spawn(
            public
                .acceptor(acceptor)
                .serve_with_shutdown(edge, drain.stopped()),
        ),
        None => drain.spawn(public.serve_with_shutdown(edge, drain.stopped())),
    }
    drain.spawn(admin.serve_with_shutdown(
        mesh_examples::admin::build(telemetry.metrics(), drain.ready_flag()),
        drain.stopped(),
    ));
    drain.set_ready();
    println!(
        "mesh-gateway: ready public={} admin={} seed={seed}",
        addrs.0, addrs.1
    );
    tracing::info!(
        public = %addrs.0,
        admin = %addrs.1,
        tls = config.tls.is_some(),
        services = ?config.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        identity = %config.identity.cert.display(),
        seed,
        "mesh-gateway started"
    );

    drain.run_until_signal("mesh-gateway").await?;
    drop(identity);
    telemetry.shutdown().await;
    tracing::info!("mesh-gateway: stopped");
    Ok(())
}
