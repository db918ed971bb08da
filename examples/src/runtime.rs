//! What the proxy binaries (`mesh-sidecar`, `mesh-gateway`) do around their services, in one place:
//! telemetry providers ([`Telemetry`]), the identity files and their rotation ([`IdentityFiles`]),
//! listeners bound with errors that name the configuration key ([`bind`]), the server settings of
//! a listener that only the local application calls ([`local_clients_server_config`]), and the
//! graceful stop on SIGTERM or Ctrl-C ([`Drain`]).
//!
//! The other listeners (the sidecar's inbound, the gateway's public and both admin listeners) use
//! mesh-core's `ServerConfig::default()`: idle connections closed after 30 s and evicted first
//! when full, at most 10 000 connections and 1 024 per client address, stalled writers cut after
//! 30 s, request heads up to 64 KiB (larger: `431`), HTTP/2 keep-alive PINGs every 20 s.
//!
//! A binary's `run` reads, in order:
//!
//! ```text
//! Telemetry::install → IdentityFiles::load → build services → bind listeners
//!   → Drain::spawn each server → Drain::set_ready → print the ready line
//!   → Drain::run_until_signal → Telemetry::shutdown
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mesh_core::BoxError;
use mesh_core::server::ServerConfig;
use mesh_observe::prometheus::{MetricsService, prometheus_endpoint};
use mesh_tls::rotation::{FileSource, FileSourceConfig};
use mesh_tls::{TlsAcceptor, TlsConnector};
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Identity;

/// How often the identity files are checked for rotation.
pub const IDENTITY_POLL: Duration = Duration::from_secs(5);

/// The process's metrics and traces: a meter provider read by the Prometheus endpoint that the
/// admin listener serves, and a global tracer provider without an exporter (so that each hop's
/// spans have ids of their own to propagate; see [`crate::stack::install_tracer_provider`]).
#[derive(Debug)]
pub struct Telemetry {
    meter: Meter,
    metrics: MetricsService,
    meter_provider: SdkMeterProvider,
    tracer_provider: SdkTracerProvider,
}

impl Telemetry {
    /// Sets both providers up; `name` names the meter (the binary's name). Call it before any trace
    /// layer is built: the layers read the global tracer provider when they are built.
    ///
    /// # Errors
    ///
    /// When the Prometheus exporter cannot be built.
    pub fn install(name: &'static str) -> Result<Self, BoxError> {
        let (reader, metrics) = prometheus_endpoint()?;
        let meter_provider = SdkMeterProvider::builder().with_reader(reader).build();
        let meter = meter_provider.meter(name);
        let tracer_provider = crate::stack::install_tracer_provider();
        Ok(Self {
            meter,
            metrics,
            meter_provider,
            tracer_provider,
        })
    }

    /// The meter every layer records with.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// The `/metrics` service (clones share the registry).
    pub fn metrics(&self) -> MetricsService {
        self.metrics.clone()
    }

    /// Flushes and stops both providers (at exit; errors are of no use then and are ignored).
    pub fn shutdown(self) {
        let _ = self.meter_provider.shutdown();
        let _ = self.tracer_provider.shutdown();
    }
}

/// The workload's SVID and trust bundles, read from the configured files and re-read every
/// [`IDENTITY_POLL`] by a background task (rotation without restart), which stops when this value
/// is dropped. Connectors and acceptors made from it always use the latest files.
#[derive(Debug)]
pub struct IdentityFiles {
    source: Arc<FileSource>,
    rotation: JoinHandle<()>,
}

impl IdentityFiles {
    /// Reads the files and starts watching them; rotation metrics go to `meter`.
    ///
    /// # Errors
    ///
    /// When a file cannot be read or parsed, or the key does not fit the certificate; the message
    /// starts with `identity files:`.
    pub async fn load(identity: &Identity, meter: &Meter) -> Result<Self, BoxError> {
        let mut config = FileSourceConfig::new(&identity.cert, &identity.key)
            .poll_interval(IDENTITY_POLL)
            .meter(meter.clone());
        for (domain, path) in &identity.bundles {
            config = config.bundle(domain.clone(), path);
        }
        let source = Arc::new(
            FileSource::load(config)
                .await
                .map_err(|e| format!("identity files: {e}"))?,
        );
        let rotation = tokio::spawn({
            let source = source.clone();
            async move { source.run().await }
        });
        Ok(Self { source, rotation })
    }

    /// A connector presenting this identity and checking the peer's.
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from_source(&*self.source)
    }

    /// An acceptor presenting this identity and requiring a client SVID.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from_source(&*self.source)
    }
}

impl Drop for IdentityFiles {
    fn drop(&mut self) {
        self.rotation.abort();
    }
}

/// Binds `addr`; an error names the configuration key it came from (`key`, e.g.
/// `listeners.inbound`) and the address.
///
/// # Errors
///
/// The bind failure, same kind, with that context in its message.
pub async fn bind(addr: SocketAddr, key: &'static str) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr} ({key}): {e}")))
}

/// The server settings of a listener whose every client is the local application, such as the
/// sidecar's outbound listener: mesh-core's defaults without the per-peer cap, which would
/// otherwise limit the application to 1 024 connections (they all come from 127.0.0.1); the
/// overall `max_connections` still bounds them.
pub fn local_clients_server_config() -> ServerConfig {
    ServerConfig::default().max_connections_per_peer(usize::MAX)
}

/// The listeners' server tasks, the readiness flag the admin listener reports, and the graceful
/// stop: on SIGTERM or Ctrl-C, `/ready` turns 503, every listener stops accepting, and in-flight
/// requests finish (bounded by mesh-core's drain timeout) before [`run_until_signal`] returns.
///
/// [`run_until_signal`]: Drain::run_until_signal
#[derive(Debug)]
pub struct Drain {
    ready: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<io::Result<()>>>,
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drain {
    /// Not ready, no task yet.
    pub fn new() -> Self {
        Self {
            ready: Arc::new(AtomicBool::new(false)),
            stop: watch::Sender::new(false),
            tasks: Vec::new(),
        }
    }

    /// The flag to give [`admin::build`](crate::admin::build): set by [`set_ready`](Self::set_ready),
    /// cleared when the drain starts.
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    /// A future that completes when the drain starts: the `shutdown` argument of a server's
    /// `serve_with_shutdown`.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopped = self.stop.subscribe();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    }

    /// Runs one listener's server (built with [`stopped`](Self::stopped)) until the drain ends.
    pub fn spawn(&mut self, server: impl Future<Output = io::Result<()>> + Send + 'static) {
        self.tasks.push(tokio::spawn(server));
    }

    /// Marks the process ready (`/ready` answers 200): call it once every listener is bound.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Waits for SIGTERM or Ctrl-C, then drains: prints `<name>: draining` to stderr, clears the
    /// ready flag, stops every listener and waits for every server task to finish.
    ///
    /// # Errors
    ///
    /// When the signal handler cannot be installed, or a server task failed or panicked.
    pub async fn run_until_signal(self, name: &str) -> Result<(), BoxError> {
        crate::admin::shutdown_signal().await?;
        eprintln!("{name}: draining");
        self.ready.store(false, Ordering::Release);
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await??;
        }
        Ok(())
    }
}
