//! `mesh-sidecar`: a service-mesh sidecar built from the mesh-* crates, configured by one TOML file.
//!
//! ```text
//! inbound  (mTLS, from peer sidecars)
//!   TlsAcceptor → ErrorResponse → AuthzLayer → ServerTraceLayer → ConcurrencyLimit → local app
//! outbound (plaintext, from the local app)
//!   route by :authority / Host → ClientTrace → RequestTimeout → Retry + WindowBudget → Balance
//!   (locality, ejection; static / file / DNS discovery) → per-endpoint breaker → HTTP/2 over mTLS
//! admin    (plaintext) /live, /ready, /metrics
//! ```
//!
//! HTTP/1.1 and HTTP/2 (gRPC) are accepted on every listener; between sidecars everything travels
//! over HTTP/2; to the local app, in the configured `app.protocol`. Identity files are re-read
//! every few seconds (rotation without restart). SIGTERM or Ctrl-C: `/ready` turns 503, every
//! listener stops accepting, in-flight requests finish (bounded by mesh-core's drain timeout), then
//! the process exits 0. A configuration error prints the key and the reason and exits 2.
//!
//! Once all listeners are bound, one line goes to stdout:
//! `mesh-sidecar: ready inbound=<addr> outbound=<addr> admin=<addr>` (port 0 in the file means
//! any free port; the line gives the real ones).
//!
//! The configuration format is documented on [`mesh_examples::config::SidecarConfig`].

mod inbound;
mod outbound;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mesh_core::error::ErrorResponseLayer;
use mesh_core::server::Server;
use mesh_examples::args::{ArgError, Args};
use mesh_examples::config::{self, Sidecar};
use mesh_examples::stack::build_client;
use mesh_observe::prometheus::prometheus_endpoint;
use mesh_tls::rotation::{FileSource, FileSourceConfig};
use mesh_tls::{TlsAcceptor, TlsConnector};
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::Layer;

const USAGE: &str = "\
mesh-sidecar: a service-mesh sidecar (mTLS, authorization, balancing, retries, metrics)

USAGE:
    mesh-sidecar --config <FILE> [--seed <N>]

OPTIONS:
    --config <FILE>   the TOML configuration (see the mesh_examples::config docs)
    --seed <N>        seed of the balancers, retry and breaker jitter (default 0)
    --help            print this text";

/// How often the identity files are checked for rotation.
const IDENTITY_POLL: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() {
    let (path, seed) = match options() {
        Ok(options) => options,
        Err(ArgError::Help) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("mesh-sidecar: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let config = match config::load(std::path::Path::new(&path)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mesh-sidecar: configuration error in {path}: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(config, seed).await {
        eprintln!("mesh-sidecar: {e}");
        std::process::exit(1);
    }
}

fn options() -> Result<(String, u64), ArgError> {
    let mut args = Args::parse(std::env::args().skip(1))?;
    let path: String = args.value("--config", String::new())?;
    let seed: u64 = args.value("--seed", 0)?;
    args.finish()?;
    if path.is_empty() {
        return Err(ArgError::MissingValue("--config".into()));
    }
    Ok((path, seed))
}

async fn run(config: Sidecar, seed: u64) -> Result<(), Box<dyn std::error::Error>> {
    let (reader, metrics) = prometheus_endpoint()?;
    let provider = SdkMeterProvider::builder().with_reader(reader).build();
    let meter = provider.meter("mesh-sidecar");
    // Spans are not exported, but each hop needs its own span id so that the `traceparent` it
    // sends names this sidecar as the parent. Set before any trace layer is built: the layers
    // read the global tracer then.
    let tracer_provider = mesh_examples::stack::install_tracer_provider();

    let mut identity = FileSourceConfig::new(&config.identity.cert, &config.identity.key)
        .poll_interval(IDENTITY_POLL)
        .meter(meter.clone());
    for (domain, path) in &config.identity.bundles {
        identity = identity.bundle(domain.clone(), path);
    }
    let source = Arc::new(
        FileSource::load(identity)
            .await
            .map_err(|e| format!("identity files: {e}"))?,
    );
    let rotation = tokio::spawn({
        let source = source.clone();
        async move { source.run().await }
    });
    let connector = TlsConnector::from_source(&*source);
    let acceptor = TlsAcceptor::from_source(&*source);

    let mut routes = HashMap::new();
    for service in &config.services {
        let client = build_client(service, &config.locality, connector.clone(), &meter, seed)
            .map_err(|e| format!("service {}: {e}", service.name))?;
        for authority in &service.authorities {
            routes.insert(authority.clone(), client.clone());
        }
    }

    let bind = |addr, name: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} ({name}): {e}"))
    };
    let inbound = Server::new(bind(config.inbound, "listeners.inbound").await?).acceptor(acceptor);
    let outbound = Server::new(bind(config.outbound, "listeners.outbound").await?);
    let admin = Server::new(bind(config.admin, "listeners.admin").await?);
    let addrs = (
        inbound.local_addr()?,
        outbound.local_addr()?,
        admin.local_addr()?,
    );

    let ready = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let inbound_service = inbound::build(&config, &meter).map_err(|e| e.to_string())?;
    let tasks = [
        tokio::spawn(inbound.serve_with_shutdown(inbound_service, until_stopped())),
        tokio::spawn(outbound.serve_with_shutdown(
            ErrorResponseLayer::new().layer(outbound::Router::new(routes)),
            until_stopped(),
        )),
        tokio::spawn(admin.serve_with_shutdown(
            mesh_examples::admin::build(metrics, ready.clone()),
            until_stopped(),
        )),
    ];
    ready.store(true, Ordering::Release);
    println!(
        "mesh-sidecar: ready inbound={} outbound={} admin={}",
        addrs.0, addrs.1, addrs.2
    );

    mesh_examples::admin::shutdown_signal().await?;
    eprintln!("mesh-sidecar: draining");
    ready.store(false, Ordering::Release);
    let _ = stop.send(true);
    for task in tasks {
        task.await??;
    }
    rotation.abort();
    let _ = provider.shutdown();
    let _ = tracer_provider.shutdown();
    eprintln!("mesh-sidecar: stopped");
    Ok(())
}
