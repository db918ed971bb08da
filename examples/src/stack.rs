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
//! The breakers live in gate mode inside the balancer's factory, as in the `demo` binary: an open
//! breaker makes its endpoint unready and the balancer routes around it. They come from one
//! [`BreakerRegistry`] per service: a rebuilt endpoint service keeps its endpoint's breaker, an
//! endpoint that leaves discovery takes its breaker with it, and `mesh.breaker.state` has one
//! series per endpoint (`mesh.breaker.name` = the service, `server.address` / `server.port` = the
//! endpoint).
//!
//! Peer sidecars are reached over HTTP/2 (the default `protocol`): one multiplexed mTLS connection
//! carries the local app's HTTP/1.1 and gRPC requests alike, and each side converts at its edge.
//!
//! [`config::Service`]: crate::config::Service

use std::time::Duration;

use http::{Request, Response};
use mesh_balance::discover::{
    DnsDiscover, DnsDiscoverConfig, DnsTarget, FileDiscover, FileDiscoverConfig, StaticDiscover,
};
use mesh_balance::{Balance, BalanceConfig, LocalityConfig};
use mesh_core::classify::MeshClassifier;
use mesh_core::client::{ClientConfig, Connect, HttpClient, TcpConnector};
use mesh_core::{Body, BoxError, Endpoint, Locality};
use mesh_observe::{ClientTraceLayer, TraceConfig};
use mesh_retry::body::ReplayBody;
use mesh_retry::breaker::{BreakerRegistry, CircuitBreaker};
use mesh_retry::budget::WindowBudget;
use mesh_retry::retry::RetryLayer;
use mesh_retry::timeout::{RequestTimeoutLayer, TimeoutConfig};
use mesh_tls::TlsConnector;
use opentelemetry::metrics::Meter;
use tower::ServiceBuilder;
use tower::discover::Discover;
use tower::util::BoxCloneSyncService;

use crate::config::{Discovery, Service, Transport};

/// A whole client, boxed: mesh-core [`Body`] both ways. Clones share the balancer, budget and
/// breakers (they are one client); each clone must be polled ready before it is called.
pub type Client = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

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
/// `plaintext` service), locality tiers around `local`, metrics on `meter`, randomness from `seed`.
///
/// Must run inside a tokio runtime (file and DNS discovery start timers when first polled).
///
/// # Errors
///
/// When the discovery source cannot start (an unknown file extension, a resolver that cannot be
/// built) or a layer refuses its settings; the error says which.
pub fn build_client(
    service: &Service,
    local: &Locality,
    connector: TlsConnector,
    meter: &Meter,
    seed: u64,
) -> Result<Client, BoxError> {
    match &service.discovery {
        Discovery::Static(endpoints) => finish(
            StaticDiscover::new(endpoints.iter().cloned()),
            None,
            service,
            local,
            connector,
            meter,
            seed,
        ),
        Discovery::File {
            path,
            interval,
            identity,
        } => finish(
            FileDiscover::with_config(
                path.clone(),
                FileDiscoverConfig::default()
                    .interval(*interval)
                    .meter(meter.clone()),
            )?,
            identity.clone(),
            service,
            local,
            connector,
            meter,
            seed,
        ),
        Discovery::Dns {
            host,
            port,
            nameserver,
            identity,
        } => {
            let config = DnsDiscoverConfig::default().meter(meter.clone());
            let discover =
                DnsDiscover::with_nameserver(DnsTarget::host(host, *port)?, *nameserver, config)?;
            finish(
                discover,
                identity.clone(),
                service,
                local,
                connector,
                meter,
                seed,
            )
        }
    }
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
    meter: &Meter,
    seed: u64,
) -> Result<Vec<Client>, BoxError> {
    services
        .iter()
        .map(|service| {
            build_client(service, local, connector.clone(), meter, seed)
                .map_err(|e| format!("service {}: {e}", service.name).into())
        })
        .collect()
}

fn finish<D>(
    discover: D,
    identity: Option<String>,
    service: &Service,
    local: &Locality,
    connector: TlsConnector,
    meter: &Meter,
    seed: u64,
) -> Result<Client, BoxError>
where
    D: Discover<Key = mesh_core::EndpointKey, Service = Endpoint> + Send + Unpin + 'static,
    D::Error: Into<BoxError>,
{
    match service.transport {
        Transport::Mtls => {
            with_connector(discover, identity, service, local, connector, meter, seed)
        }
        Transport::Plaintext => with_connector(
            discover,
            None,
            service,
            local,
            TcpConnector::new(),
            meter,
            seed,
        ),
    }
}

fn with_connector<D, C>(
    discover: D,
    identity: Option<String>,
    service: &Service,
    local: &Locality,
    connector: C,
    meter: &Meter,
    seed: u64,
) -> Result<Client, BoxError>
where
    D: Discover<Key = mesh_core::EndpointKey, Service = Endpoint> + Send + Unpin + 'static,
    D::Error: Into<BoxError>,
    C: Connect + Sync,
{
    // Checked once here, so the factory below cannot fail. Each endpoint's breaker seeds its
    // jitter from `seed` and its address.
    let breakers = BreakerRegistry::new(
        service
            .breaker
            .clone()
            .seed(seed)
            .name(service.name.clone())
            .meter(meter.clone()),
    )?;
    let client_config = peer_client_config(service);
    let make = move |ep: &Endpoint| {
        let breaker = breakers.get(ep.addr());
        let endpoint = with_identity(ep, identity.as_deref());
        let http =
            HttpClient::<ReplayBody<Body>>::new(endpoint, connector.clone(), client_config.clone());
        CircuitBreaker::with_handle(http, breaker, MeshClassifier::new())
    };
    let balance_config = BalanceConfig::default()
        .name(service.name.clone())
        .seed(seed)
        .outliers(service.outliers)
        .locality(LocalityConfig::new(local.clone()))
        .meter(meter.clone());
    let balance = Balance::new(discover, make, balance_config)?;
    let budget = WindowBudget::new(service.budget.clone())?;
    let client = ServiceBuilder::new()
        .map_response(|res: Response<_>| res.map(Body::new))
        .layer(ClientTraceLayer::new(
            TraceConfig::new().meter(meter.clone()),
        ))
        .layer(RequestTimeoutLayer::new(
            TimeoutConfig::default()
                .timeout(Some(service.timeout))
                .meter(meter.clone()),
        ))
        .layer(
            RetryLayer::new(service.retry.clone().seed(seed))?
                .budget(budget)
                .meter(meter.clone()),
        )
        .service(balance);
    Ok(BoxCloneSyncService::new(client))
}

/// `ep` with the service-wide expected SPIFFE ID when it carries none of its own.
fn with_identity(ep: &Endpoint, identity: Option<&str>) -> Endpoint {
    match identity {
        Some(id) if ep.identity().is_none() => {
            let mut builder = Endpoint::builder(ep.addr())
                .weight(ep.weight().get())
                .locality(ep.locality().clone())
                .identity(id);
            for (name, value) in ep.labels() {
                builder = builder.label(name, value);
            }
            // The ID was checked when the configuration was loaded.
            builder.build().unwrap_or_else(|_| ep.clone())
        }
        _ => ep.clone(),
    }
}

/// Makes the trace context a request arrived with (W3C or B3 headers) the parent of the client span
/// [`build_client`]'s stack opens, which then replaces those headers with its own. A malformed
/// context is ignored, so the client span starts a new trace.
///
/// The body a proxy forwards for a client's request body: boxed, and cut with mesh-core's
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

/// Installs a tracer provider without an exporter as the global one, so that each proxy hop has
/// span ids of its own to send in `traceparent` (with no provider, OpenTelemetry's spans are
/// invalid and the client layer can only forward the caller's ids). Call it before building any
/// trace layer; shut the returned provider down at exit.
pub fn install_tracer_provider() -> opentelemetry_sdk::trace::SdkTracerProvider {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    provider
}
