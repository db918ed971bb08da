//! What the proxy binaries (`mesh-sidecar`, `mesh-gateway`) do around their services, in one place:
//! telemetry providers ([`Telemetry`]), the identity files and their rotation ([`IdentityFiles`]),
//! listeners bound with errors that name the configuration key ([`bind`]), the server settings of
//! a listener that only the local application calls ([`outbound_server_config`]), and the
//! graceful stop on SIGTERM or Ctrl-C ([`Drain`]).
//!
//! The listeners that serve traffic take their connection bounds from the `[server]` table
//! ([`ServerSettings`]); absent keys, and the admin listeners, keep mesh-core's
//! `ServerConfig::default()`: idle connections closed after 30 s and evicted first when full, at
//! most 10 000 connections and 1 024 per client address, stalled writers cut after 30 s, request
//! heads up to 64 KiB (larger: `431`), HTTP/2 keep-alive PINGs every 20 s.
//!
//! The runtime ([`build_runtime`], [`workers_option`]): with one worker the binaries run a
//! current-thread tokio runtime, every task and the I/O driver on the main thread, which spares the
//! multi-thread scheduler's hand-offs between a worker and the driver for nothing; with more, a
//! multi-thread runtime with that many workers.
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
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mesh_core::BoxError;
use mesh_core::server::ServerConfig;
use mesh_observe::otlp::{OtlpConfig, OtlpPipeline};
use mesh_observe::prometheus::{MetricsService, prometheus_endpoint};
use mesh_tls::rotation::{FileSource, FileSourceConfig, RotationError};
use mesh_tls::{TlsAcceptor, TlsConnector};
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::args::{ArgError, Args};

/// The environment variable that gives the worker count when `--workers` is absent (tokio's own
/// name for it, which `#[tokio::main]` reads).
pub const WORKERS_ENV: &str = "TOKIO_WORKER_THREADS";

/// Takes `--workers <N>` (N ≥ 1) from `args`; when absent, [`WORKERS_ENV`]'s value, else the
/// number of CPUs the process may run on.
///
/// # Errors
///
/// When the flag or the variable is not a whole number of at least 1.
pub fn workers_option(args: &mut Args) -> Result<NonZeroUsize, ArgError> {
    let default = match std::env::var(WORKERS_ENV) {
        Ok(value) => value.trim().parse().map_err(|e| ArgError::Invalid {
            flag: WORKERS_ENV.into(),
            value,
            reason: format!("{e} (a whole number of at least 1)"),
        })?,
        Err(_) => std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
    };
    args.value("--workers", default)
}

/// The binaries' tokio runtime, timers and I/O enabled: with one worker a current-thread runtime
/// (everything, the I/O driver included, runs on the thread that calls `block_on`), else a
/// multi-thread runtime with `workers` worker threads. Blocking work (file reads, DNS) goes to
/// tokio's blocking pool in both.
///
/// # Errors
///
/// When the runtime cannot be built (the operating system refuses a thread or the I/O driver).
pub fn build_runtime(workers: NonZeroUsize) -> io::Result<tokio::runtime::Runtime> {
    match workers.get() {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
}

/// Runs `main` to completion on [`build_runtime`]`(workers)`; when the runtime cannot be built,
/// prints `program: cannot start the runtime: <error>` and exits 1.
pub fn block_on<F: Future>(program: &str, workers: NonZeroUsize, main: F) -> F::Output {
    match build_runtime(workers) {
        Ok(runtime) => runtime.block_on(main),
        Err(e) => {
            eprintln!("{program}: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    }
}
use tokio::task::JoinHandle;

use crate::config::{ConfigError, Identity};
use crate::telemetry::TelemetryConfig;

/// How often the identity files are checked for rotation.
pub const IDENTITY_POLL: Duration = Duration::from_secs(5);

/// The process's metrics and traces: a meter provider read by the Prometheus endpoint that the
/// admin listener serves, and a global tracer provider. With `[otlp]` ([`TelemetryConfig::otlp`]),
/// spans and metrics are also exported over OTLP/HTTP, and every signal carries the resource
/// attribute `service.name` (the configured `service_name`, else the binary's name). Without span
/// export, the tracer records nothing and only gives each hop's spans ids of their own to
/// propagate (see [`crate::stack::install_tracer_provider`]): a span nobody exports is not built.
#[derive(Debug)]
pub struct Telemetry {
    meter: Meter,
    metrics: MetricsService,
    meter_provider: SdkMeterProvider,
    /// The SDK's tracer provider when spans are exported (`[otlp]` with `traces = true`).
    tracer_provider: Option<SdkTracerProvider>,
    /// The OTLP providers, when `[otlp]` is set; shut down after the others.
    otlp: Option<OtlpPipeline>,
}

impl Telemetry {
    /// Sets both providers up; `name` names the meter and is the default `service.name` (the
    /// binary's name). Call it inside the multi-thread runtime, before any trace layer is built:
    /// the layers read the global tracer provider when they are built.
    ///
    /// # Errors
    ///
    /// When the Prometheus exporter or the OTLP pipeline cannot be built.
    pub fn install(name: &'static str, settings: &TelemetryConfig) -> Result<Self, BoxError> {
        let service_name = settings.service_name.as_deref().unwrap_or(name).to_owned();
        let resource = Resource::builder()
            .with_service_name(service_name.clone())
            .build();
        let (reader, metrics) = prometheus_endpoint()?;
        let local_meters = |reader| {
            SdkMeterProvider::builder()
                .with_reader(reader)
                .with_resource(resource.clone())
                .build()
        };
        let (meter_provider, otlp) = match &settings.otlp {
            None => (local_meters(reader), None),
            Some(otlp) => {
                let config = OtlpConfig::default()
                    .endpoint(otlp.endpoint.clone())
                    .service_name(service_name)
                    .metrics_interval(otlp.interval);
                if otlp.metrics {
                    let pipeline = OtlpPipeline::with_metric_reader(config, reader)?;
                    (pipeline.meter_provider().clone(), Some(pipeline))
                } else {
                    (local_meters(reader), Some(OtlpPipeline::new(config)?))
                }
            }
        };
        let meter = meter_provider.meter(name);
        let tracer_provider = match &otlp {
            Some(pipeline) if settings.otlp.as_ref().is_some_and(|o| o.traces) => {
                let provider = pipeline.tracer_provider().clone();
                opentelemetry::global::set_tracer_provider(provider.clone());
                Some(provider)
            }
            _ => {
                crate::stack::install_tracer_provider();
                None
            }
        };
        Ok(Self {
            meter,
            metrics,
            meter_provider,
            tracer_provider,
            otlp,
        })
    }

    /// The meter every layer records with.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// What the client stacks record with: [`meter`](Self::meter), and the installed tracer (the
    /// exporting SDK provider's, scope `mesh-observe` as the global default names it, or
    /// [`IdOnlyTracer`](mesh_observe::IdOnlyTracer)), kept as its own type (see
    /// [`ClientTelemetry`](crate::stack::ClientTelemetry)).
    pub fn client_telemetry(&self) -> crate::stack::ClientTelemetry {
        use opentelemetry::trace::TracerProvider as _;
        let telemetry = crate::stack::ClientTelemetry::new(self.meter.clone());
        match &self.tracer_provider {
            Some(provider) => telemetry.tracer(provider.tracer("mesh-observe")),
            None => telemetry.tracer(mesh_observe::IdOnlyTracer::new()),
        }
    }

    /// The `/metrics` service (clones share the registry).
    pub fn metrics(&self) -> MetricsService {
        self.metrics.clone()
    }

    /// Flushes and stops the providers (at exit; errors are of no use then and are ignored).
    /// With OTLP export this sends what is buffered, which blocks until the export requests are
    /// answered; those requests run on this runtime, so the blocking part runs on tokio's blocking
    /// pool while the caller's runtime (current-thread or multi-thread) keeps driving them.
    pub async fn shutdown(self) {
        let stop = move || {
            let _ = self.meter_provider.shutdown();
            if let Some(provider) = self.tracer_provider {
                let _ = provider.shutdown();
            }
            if let Some(otlp) = self.otlp {
                let _ = otlp.shutdown();
            }
        };
        // A panic in an exporter's shutdown is of no more use at exit than its error.
        let _ = tokio::task::spawn_blocking(stop).await;
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
    /// Checks the files ([`crate::identity::check`]: each warning is logged at `warn`, event
    /// `identity setup`), reads them and starts watching them; rotation metrics go to `meter`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] (boxed; the binaries exit 2 on it) naming the key (`identity.cert`,
    /// `identity.key`, `identity.bundles."td"`), the file and the reason, for any file that
    /// does not make a usable identity.
    pub async fn load(identity: &Identity, meter: &Meter) -> Result<Self, BoxError> {
        for warning in crate::identity::check::check(identity, std::time::SystemTime::now())? {
            tracing::warn!(%warning, "identity setup");
        }
        let mut config = FileSourceConfig::new(&identity.cert, &identity.key)
            .poll_interval(IDENTITY_POLL)
            .meter(meter.clone());
        for (domain, path) in &identity.bundles {
            config = config.bundle(domain.clone(), path);
        }
        let source = Arc::new(
            FileSource::load(config)
                .await
                .map_err(|e| startup_error(identity, e))?,
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

/// A refusal of mesh-tls's loader that the check did not foresee (a file changed in between, say)
/// is a configuration error too; the key is the file's when the error names one.
fn startup_error(identity: &Identity, error: RotationError) -> ConfigError {
    let key = match &error {
        RotationError::Read { path, .. } if *path == identity.cert => "identity.cert".to_owned(),
        RotationError::Read { path, .. } if *path == identity.key => "identity.key".to_owned(),
        RotationError::Read { path, .. } => identity
            .bundles
            .iter()
            .find(|(_, bundle)| bundle == path)
            .map(|(domain, _)| crate::identity::check::bundle_key(domain.as_str()))
            .unwrap_or_else(|| "identity".to_owned()),
        _ => "identity".to_owned(),
    };
    ConfigError::invalid(key, format!("unusable identity files: {error}"))
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

/// The smallest request-head bound accepted: mesh-core raises anything below it to it.
const MIN_REQUEST_HEAD_BYTES: usize = 8 * 1024;

/// `[server]`: the connection bounds of the listeners that serve traffic (the sidecar's inbound
/// and outbound listeners, the gateway's public one). Every key is optional: an absent key keeps
/// mesh-core's default, named below.
///
/// ```toml
/// [server]
/// max_connections_per_peer = 100000   # behind a load balancer that hides client addresses
/// idle_timeout_ms = 60000
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Connections served at once per listener; at least 1. Default 10 000.
    pub max_connections: Option<usize>,
    /// Connections from one client IP address; at least 1. Default 1 024. Not applied to the
    /// sidecar's outbound listener, whose every client is the local application.
    pub max_connections_per_peer: Option<usize>,
    /// Closes a connection with no request in progress after this many milliseconds; 0 never
    /// does. Default 30 000.
    pub idle_timeout_ms: Option<u64>,
    /// How long an HTTP/1.1 client may take to send a complete request head, in milliseconds:
    /// from when the connection opened or its previous response was written out, so it also
    /// closes HTTP/1.1 keep-alive connections idle that long (raise it with `idle_timeout_ms`
    /// for longer-lived idle connections). It also bounds the first bytes of every connection.
    /// 0 never closes. Default 30 000.
    pub header_read_timeout_ms: Option<u64>,
    /// Cuts a client that has not taken any response bytes for this many milliseconds while the
    /// server had some to send; 0 never does. Default 30 000.
    pub write_stall_timeout_ms: Option<u64>,
    /// The largest request head (request line and headers) in bytes; at least 8 192. Default
    /// 65 536; larger heads are answered `431`.
    pub max_request_head_bytes: Option<usize>,
    /// Cuts a request whose body stops arriving for this many milliseconds while it is being
    /// forwarded (a stalled upload holding an upstream connection); the client gets `400` if it
    /// still listens. 0 never does. Default 30 000, like the other idle bounds.
    pub request_body_idle_timeout_ms: Option<u64>,
}

/// The default of [`ServerSettings::request_body_idle_timeout_ms`].
const REQUEST_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

impl ServerSettings {
    /// How long a forwarded request body may stall (`None`: no bound).
    pub fn request_body_idle_timeout(&self) -> Option<Duration> {
        match self.request_body_idle_timeout_ms {
            None => Some(REQUEST_BODY_IDLE_TIMEOUT),
            Some(0) => None,
            Some(ms) => Some(Duration::from_millis(ms)),
        }
    }

    /// mesh-core's server configuration with these settings applied.
    ///
    /// # Errors
    ///
    /// A value out of range, naming its key (`server.max_connections`, …).
    pub fn resolve(&self) -> Result<ServerConfig, ConfigError> {
        let mut config = ServerConfig::default();
        if let Some(max) = self.max_connections {
            config = config.max_connections(at_least_one("server.max_connections", max)?);
        }
        if let Some(max) = self.max_connections_per_peer {
            config = config
                .max_connections_per_peer(at_least_one("server.max_connections_per_peer", max)?);
        }
        if let Some(ms) = self.idle_timeout_ms {
            config = config.idle_timeout((ms > 0).then(|| Duration::from_millis(ms)));
        }
        if let Some(ms) = self.header_read_timeout_ms {
            config = config.header_read_timeout((ms > 0).then(|| Duration::from_millis(ms)));
        }
        if let Some(ms) = self.write_stall_timeout_ms {
            config = config.write_stall_timeout((ms > 0).then(|| Duration::from_millis(ms)));
        }
        if let Some(bytes) = self.max_request_head_bytes {
            if bytes < MIN_REQUEST_HEAD_BYTES {
                return Err(ConfigError::invalid(
                    "server.max_request_head_bytes",
                    format!("{bytes} is below the smallest bound, {MIN_REQUEST_HEAD_BYTES}"),
                ));
            }
            config = config.max_request_head_size(bytes);
        }
        Ok(config)
    }
}

fn at_least_one(key: &str, value: usize) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be at least 1"));
    }
    Ok(value)
}

/// The server settings of the sidecar's outbound listener, whose every client is the local
/// application and whose router forwards each request:
///
/// - no per-peer cap, which would otherwise limit the application to that many connections
///   (they all come from 127.0.0.1); `max_connections` still bounds them;
/// - no connection values in the requests
///   ([`connection_extensions(false)`](ServerConfig::connection_extensions)): the router would
///   strip them unread before forwarding, so the server does not make them (four heap
///   allocations per request).
pub fn outbound_server_config(config: ServerConfig) -> ServerConfig {
    config
        .max_connections_per_peer(usize::MAX)
        .connection_extensions(false)
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

    /// Waits for SIGTERM or Ctrl-C, then drains: logs `<name>: draining` (info), clears the
    /// ready flag, stops every listener and waits for every server task to finish.
    ///
    /// # Errors
    ///
    /// When the signal handler cannot be installed, or a server task failed or panicked.
    pub async fn run_until_signal(self, name: &str) -> Result<(), BoxError> {
        crate::admin::shutdown_signal().await?;
        tracing::info!("{name}: draining");
        self.ready.store(false, Ordering::Release);
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await??;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<ServerConfig, String> {
        let settings: ServerSettings = toml::from_str(text).map_err(|e| e.to_string())?;
        settings.resolve().map_err(|e| e.to_string())
    }

    #[test]
    fn one_worker_is_a_current_thread_runtime_more_a_multi_thread_one() {
        use tokio::runtime::RuntimeFlavor;
        let flavor = |n| {
            let workers = NonZeroUsize::new(n).unwrap();
            build_runtime(workers).unwrap().handle().runtime_flavor()
        };
        assert_eq!(flavor(1), RuntimeFlavor::CurrentThread);
        assert_eq!(flavor(2), RuntimeFlavor::MultiThread);
    }

    #[test]
    fn workers_flag_is_at_least_one() {
        let parse = |value: &str| {
            let mut args = Args::parse(["--workers".to_owned(), value.to_owned()]).unwrap();
            workers_option(&mut args).map(NonZeroUsize::get)
        };
        assert_eq!(parse("3"), Ok(3));
        for bad in ["0", "-1", "many"] {
            assert!(
                matches!(parse(bad), Err(ArgError::Invalid { ref flag, .. }) if flag == "--workers"),
                "{bad}"
            );
        }
    }

    #[test]
    fn absent_keys_keep_mesh_core_defaults() {
        assert_eq!(settings("").unwrap(), ServerConfig::default());
    }

    #[test]
    fn keys_set_the_bounds_and_zero_turns_timeouts_off() {
        let config = settings(
            "max_connections = 50\nmax_connections_per_peer = 5\nidle_timeout_ms = 0\n\
             write_stall_timeout_ms = 1500\nmax_request_head_bytes = 16384\n\
             header_read_timeout_ms = 2500\n",
        )
        .unwrap();
        assert_eq!(
            config.get_header_read_timeout(),
            Some(Duration::from_millis(2500))
        );
        let off = settings("header_read_timeout_ms = 0").unwrap();
        assert_eq!(off.get_header_read_timeout(), None);
        assert_eq!(config.get_max_connections(), 50);
        assert_eq!(config.get_max_connections_per_peer(), 5);
        assert_eq!(config.get_idle_timeout(), None);
        assert_eq!(
            config.get_write_stall_timeout(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(config.get_max_request_head_size(), 16384);
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let err = settings("max_connections_per_peer = 0").unwrap_err();
        assert!(err.contains("server.max_connections_per_peer"), "{err}");
        let err = settings("max_request_head_bytes = 100").unwrap_err();
        assert!(err.contains("server.max_request_head_bytes"), "{err}");
        assert!(
            settings("idle_timeout = 5").is_err(),
            "unknown keys are refused"
        );
    }
}
