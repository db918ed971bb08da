//! The outbound client stack of one service, built from a checked [`config::Service`]: what the
//! sidecar (and later the gateway) puts between a routed request and the peer's sidecar.
//!
//! ```text
//! ClientTraceLayer (spans, http.client.request.duration)
//!   → RequestTimeoutLayer (the service's overall deadline)
//!   → RetryLayer + WindowBudget (attempts, backoff, per-try deadline, budget)
//!   → Balance (P2C over PeakEWMA, locality tiers from this sidecar's locality, outlier ejection)
//!   → per endpoint: CircuitBreaker in gate mode → HttpClient over mTLS (HTTP/2)
//! ```
//!
//! A service configured with `transport = "plaintext"` (one outside the mesh) is reached over plain
//! TCP instead, in the HTTP version it is configured with.
//!
//! The stack is assembled by the facade's [`mesh::ClientBuilder`]; this module only maps a
//! service's configuration onto it. The breakers live in gate mode inside the balancer's factory:
//! an open breaker makes its endpoint unready and the balancer routes around it. They come from
//! one breaker registry per service: a rebuilt endpoint service keeps its endpoint's breaker, an
//! endpoint that leaves discovery takes its breaker with it, and `mesh.breaker.state` has one
//! series per endpoint (`mesh.breaker.name` = the service, `server.address` / `server.port` = the
//! endpoint).
//!
//! Peer sidecars are reached over HTTP/2 (the default `protocol`): one multiplexed mTLS connection
//! carries the local app's HTTP/1.1 and gRPC requests alike, and each side converts at its edge.
//!
//! A service with `discovery = { xds = "CLUSTER" }` follows the endpoints the sidecar's
//! [`XdsClient`] announces for that cluster, and its cluster's CDS policy shapes its balancer:
//! load strategy, outlier ejection, panic threshold, pending bound, slow start, and tiers by xDS
//! priority with the assignment's overprovisioning factor (`mesh::xds::cluster_balance_config`),
//! applied again at every CDS change (or overprovisioning change) of the cluster while the
//! sidecar runs (`mesh::xds::follow_policy`; requests in flight are not touched). The connect
//! timeout is taken from the policy known when the stack is built.
//!
//! [`config::Service`]: crate::config::Service

use std::time::Duration;

use http::Request;
use mesh::ClientBuilder;
use mesh_balance::discover::{
    DnsDiscover, DnsDiscoverConfig, DnsTarget, FileDiscover, FileDiscoverConfig, StaticDiscover,
};
use mesh_balance::{BalanceConfig, LocalityConfig};
use mesh_core::client::ClientConfig;
use mesh_core::{Body, BoxError, Locality};
use mesh_observe::TraceConfig;
use mesh_tls::TlsConnector;
use mesh_xds::{ClusterPolicy, XdsClient};
use opentelemetry::metrics::Meter;

use crate::config::{Discovery, Service, Transport};

/// A whole client: the facade's [`mesh::Client`]. Clones share the balancer, budget and breakers
/// (they are one client); it is always ready, and each call waits for an endpoint in its future.
pub type Client = mesh::Client;

/// What a client stack records with: the meter of every layer's metrics, and the tracer of its
/// spans.
///
/// Give it the process's tracer ([`tracer`](Self::tracer); [`Telemetry`] does): the SDK's when
/// spans are exported, else [`IdOnlyTracer`] (span ids to propagate, nothing recorded). The trace
/// layer keeps either as its own type: an `IdOnlyTracer` span is only its context, inline, and an
/// SDK span gets its attributes in one list. Without one, spans come from the global tracer
/// provider, boxed.
///
/// [`Telemetry`]: crate::runtime::Telemetry
/// [`IdOnlyTracer`]: mesh_observe::IdOnlyTracer
#[derive(Clone, Debug)]
pub struct ClientTelemetry {
    meter: Meter,
    trace: Option<TraceConfig>,
}

impl ClientTelemetry {
    /// Metrics on `meter`; spans from the global tracer provider.
    pub fn new(meter: Meter) -> Self {
        Self { meter, trace: None }
    }

    /// Spans from `tracer` (the SDK's tracer of the provider the process installed, or
    /// [`mesh_observe::IdOnlyTracer`]).
    #[must_use]
    pub fn tracer<T>(mut self, tracer: T) -> Self
    where
        T: opentelemetry::trace::Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        self.trace = Some(TraceConfig::new().tracer(tracer));
        self
    }

    /// The meter every layer records with.
    pub fn get_meter(&self) -> &Meter {
        &self.meter
    }
}

/// Connection settings to an endpoint: the service's HTTP version and HTTP/1.1 pool, 1 s to
/// connect (a peer that does not accept a TCP connection in a second is treated as down, and the
/// retry layer moves on).
fn peer_client_config(service: &Service) -> ClientConfig {
    ClientConfig::default()
        .protocol(service.protocol)
        .connect_timeout(Duration::from_secs(1))
        .max_connections(service.max_connections)
        .pool_wait_timeout(service.pool_wait_timeout)
}

/// Builds `service`'s client: discovery as configured, mTLS through `connector` (or plain TCP for a
/// `plaintext` service), locality tiers around `local`, metrics and spans as `telemetry` says,
/// randomness from `seed`.
///
/// Must run inside a tokio runtime (file and DNS discovery start timers when first polled).
///
/// # Errors
///
/// When the discovery source cannot start (an unknown file extension, a resolver that cannot be
/// built, an xDS service: use [`build_client_with_xds`]) or a layer refuses its settings; the
/// error says which.
pub fn build_client(
    service: &Service,
    local: &Locality,
    connector: TlsConnector,
    telemetry: &ClientTelemetry,
    seed: u64,
) -> Result<Client, BoxError> {
    build_client_with_xds(service, local, connector, telemetry, seed, None)
}

/// [`build_client`], where an xDS-fed service takes its endpoints and its cluster's policy from
/// `xds`.
///
/// # Errors
///
/// As [`build_client`]; an xDS service without `xds` is an error.
pub fn build_client_with_xds(
    service: &Service,
    local: &Locality,
    connector: TlsConnector,
    telemetry: &ClientTelemetry,
    seed: u64,
    xds: Option<&XdsClient>,
) -> Result<Client, BoxError> {
    // Each source sets the builder's discovery (it boxes whatever it is given); the rest of the
    // settings are the same for all, in `finish`.
    let builder = Client::builder();
    let (builder, identity) = match &service.discovery {
        Discovery::Static(endpoints) => (
            builder.discover(StaticDiscover::new(endpoints.iter().cloned())),
            None,
        ),
        Discovery::File {
            path,
            interval,
            identity,
        } => {
            let config = FileDiscoverConfig::default()
                .interval(*interval)
                .meter(telemetry.meter.clone());
            let discover = FileDiscover::with_config(path.clone(), config)?;
            (builder.discover(discover), identity.clone())
        }
        Discovery::Dns {
            host,
            port,
            nameserver,
            identity,
        } => {
            let config = DnsDiscoverConfig::default().meter(telemetry.meter.clone());
            let discover =
                DnsDiscover::with_nameserver(DnsTarget::host(host, *port)?, *nameserver, config)?;
            (builder.discover(discover), identity.clone())
        }
        Discovery::Xds { cluster, identity } => {
            let xds = xds.ok_or("xDS discovery needs an `[xds]` control plane")?;
            let policy = xds.cluster_policy(cluster);
            let discover = xds.discover(&xds_resource(cluster, policy.as_ref()));
            let builder = builder.discover(discover);
            let (client, base) = finish(
                builder,
                identity.clone(),
                policy.as_ref(),
                service,
                local,
                connector,
                telemetry,
                seed,
            )?;
            // Later CDS changes of the cluster's policy reconfigure the running balancer.
            if let Some(policy) = &policy {
                mesh::xds::apply_retry_limit(&client, policy);
            }
            tokio::spawn(mesh::xds::follow_policy(
                xds,
                cluster,
                (policy, None),
                base,
                &client,
            ));
            return Ok(client);
        }
    };
    let (client, _) = finish(
        builder, identity, None, service, local, connector, telemetry, seed,
    )?;
    Ok(client)
}

/// The EDS resource of `cluster`: the policy's `eds_service_name` once CDS named the cluster,
/// else the cluster's own name (what most control planes use).
pub fn xds_resource(cluster: &str, policy: Option<&ClusterPolicy>) -> String {
    policy.map_or_else(|| cluster.to_owned(), |p| p.eds_service_name.clone())
}

/// [`build_client`] for each of `services`, in order; an error names the service.
///
/// # Errors
///
/// As [`build_client`], prefixed with `service <name>:`.
pub fn build_clients(
    services: &[Service],
    local: &Locality,
    connector: &TlsConnector,
    telemetry: &ClientTelemetry,
    seed: u64,
) -> Result<Vec<Client>, BoxError> {
    build_clients_with_xds(services, local, connector, telemetry, seed, None)
}

/// [`build_client_with_xds`] for each of `services`, in order; an error names the service.
///
/// # Errors
///
/// As [`build_client_with_xds`], prefixed with `service <name>:`.
pub fn build_clients_with_xds(
    services: &[Service],
    local: &Locality,
    connector: &TlsConnector,
    telemetry: &ClientTelemetry,
    seed: u64,
    xds: Option<&XdsClient>,
) -> Result<Vec<Client>, BoxError> {
    services
        .iter()
        .map(|service| {
            build_client_with_xds(service, local, connector.clone(), telemetry, seed, xds)
                .map_err(|e| format!("service {}: {e}", service.name).into())
        })
        .collect()
}

/// The builder call: the service's settings (with its xDS cluster's `policy` over them), seeded, on
/// `telemetry`, over mTLS or plain TCP.
#[allow(clippy::too_many_arguments)]
fn finish(
    builder: ClientBuilder,
    identity: Option<String>,
    policy: Option<&ClusterPolicy>,
    service: &Service,
    local: &Locality,
    connector: TlsConnector,
    telemetry: &ClientTelemetry,
    seed: u64,
) -> Result<(Client, BalanceConfig), BoxError> {
    let base = BalanceConfig::default()
        .outliers(service.outliers)
        .locality(LocalityConfig::new(local.clone()));
    let mut balance = base.clone();
    let mut http = peer_client_config(service);
    if let Some(policy) = policy {
        balance = mesh::xds::cluster_balance_config(&balance, policy, None);
        if let Some(timeout) = policy.connect_timeout {
            http = http.connect_timeout(timeout);
        }
    }
    let mut builder = builder
        .name(service.name.clone())
        .timeout(service.timeout)
        .retry(service.retry.clone())
        .budget(service.budget.clone())
        .balance(balance)
        .breaker(service.breaker.clone())
        .http(http)
        .meter(telemetry.meter.clone())
        .seed(seed);
    if let Some(trace) = &telemetry.trace {
        builder = builder.trace(trace.clone());
    }
    if matches!(service.transport, Transport::Mtls) {
        builder = builder.tls(connector);
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
    }
    Ok((builder.build()?, base))
}

/// Makes the trace context a request arrived with (W3C or B3 headers) the parent of the client span
/// [`build_client`]'s stack opens, which then replaces those headers with its own. A malformed
/// context is ignored, so the client span starts a new trace.
///
/// The body a proxy forwards for a client's request body: a mesh-core `Body` (which holds hyper's
/// `Incoming`, and the idle-timeout wrapper around it, without boxing), cut with mesh-core's
/// `BodyStalled` when it stops arriving for `idle_timeout` (a stalled upload must not hold an
/// upstream connection; through mesh-core's client the cut is answered `400`).
pub fn forwarded_body<B>(body: B, idle_timeout: Option<std::time::Duration>) -> Body
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    match idle_timeout {
        Some(timeout) => Body::new(mesh_core::body::IdleTimeoutBody::new(body, timeout)),
        None => Body::new(body),
    }
}

/// Proxies call this on each forwarded request: without it the client span has no parent and the
/// caller's trace id is lost at the proxy.
pub fn adopt_trace_context<B>(req: &mut Request<B>) {
    if let Some(context) = mesh_observe::propagation::extract_context(req.headers(), |_| {}) {
        req.extensions_mut().insert(context);
    }
}

/// Installs [`IdOnlyTracerProvider`](mesh_observe::IdOnlyTracerProvider) as the global tracer
/// provider, so that each proxy hop has span ids of its own to send in `traceparent` (with no
/// provider, OpenTelemetry's spans are invalid and the trace layers can only forward the caller's
/// ids) without recording spans that no exporter reads. Call it before building any trace layer.
pub fn install_tracer_provider() -> mesh_observe::IdOnlyTracerProvider {
    let provider = mesh_observe::IdOnlyTracerProvider::new();
    opentelemetry::global::set_tracer_provider(provider.clone());
    provider
}
