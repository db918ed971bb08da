//! The TOML shape of the sidecar configuration, as serde structs. Every table rejects unknown keys,
//! so a typo is an error naming the key instead of a silently ignored setting.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarConfig {
    /// The three listening addresses.
    pub listeners: Listeners,
    /// The local application the inbound side forwards to.
    pub app: AppConfig,
    /// This workload's SVID and the trust bundles, as PEM files.
    pub identity: IdentityConfig,
    /// Where this sidecar runs; outbound balancing prefers endpoints close to it.
    #[serde(default)]
    pub locality: LocalityConfig,
    /// Per-request authorization of inbound requests. Absent: every peer that passed mTLS is
    /// allowed.
    #[serde(default)]
    pub authorization: AuthorizationConfig,
    /// Outbound services by name.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
    /// Connection bounds of the inbound and outbound listeners. Absent: mesh-core's defaults.
    #[serde(default)]
    pub server: crate::runtime::ServerSettings,
    /// The `service.name` of this process's spans and metrics (a top-level key, written before
    /// the first table). Default: the binary's name, `mesh-sidecar`.
    #[serde(default)]
    pub service_name: Option<String>,
    /// `[xds]`: the xDS control plane that services with `discovery = { xds = "CLUSTER" }` follow.
    /// Absent: no xDS (such a service is an error).
    #[serde(default)]
    pub xds: Option<XdsSettings>,
    /// `[otlp]`: export of spans and metrics over OTLP/HTTP. Absent: no export (metrics are still
    /// served on the admin listener's `/metrics`).
    #[serde(default)]
    pub otlp: Option<crate::telemetry::OtlpSettings>,
}

/// `[xds]`: one control plane over one ADS stream (mesh-xds): plaintext HTTP/2, or mutual TLS
/// with the sidecar's own identity when `server_identity` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdsSettings {
    /// The control plane's gRPC address, `ip:port` or a URI (`http://host:port`).
    pub server: String,
    /// The node id this sidecar presents (Istio: `sidecar~IP~POD.NS~NS.svc.cluster.local`).
    pub node_id: String,
    /// The node's cluster (the service this sidecar runs for). Default: none.
    #[serde(default)]
    pub node_cluster: String,
    /// `"sotw"` (State-of-the-World, default: every control plane has it) or `"delta"`.
    #[serde(default)]
    pub protocol: XdsProtocolName,
    /// How long the sidecar waits at start for the first CDS answer naming its xDS services, so
    /// their clusters' policies shape their stacks, in milliseconds. Default 15 000 (Envoy's
    /// `initial_fetch_timeout`); when it passes, the services start on their own settings.
    #[serde(default = "default_initial_fetch_timeout_ms")]
    pub initial_fetch_timeout_ms: u64,
    /// The SPIFFE ID the control plane must prove (Istio: `spiffe://cluster.local/ns/istio-system/sa/istiod`).
    /// When set, the sidecar connects with mutual TLS: it presents its own SVID (`[identity]`)
    /// and checks the control plane's certificate against its trust bundles, as for mesh traffic.
    /// Default: none, plaintext (`server` must then not be an `https://` URI).
    #[serde(default)]
    pub server_identity: Option<String>,
}

fn default_initial_fetch_timeout_ms() -> u64 {
    15_000
}

/// The ADS variant of `[xds] protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdsProtocolName {
    /// State-of-the-World.
    #[default]
    Sotw,
    /// Delta (incremental).
    Delta,
}

/// `[listeners]`: socket addresses (`ip:port`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    /// mTLS from peer sidecars, forwarded to the local app.
    pub inbound: String,
    /// Plaintext from the local app, routed to outbound services.
    pub outbound: String,
    /// `/live`, `/ready`, `/metrics` (plaintext; bind it to loopback).
    pub admin: String,
}

/// `[app]`: the local application.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Its address, `ip:port`.
    pub address: String,
    /// `"http1"` (default) or `"http2"` (gRPC apps).
    #[serde(default)]
    pub protocol: ProtocolName,
    /// How the inbound concurrency limit is set: `"fixed"` (default) at `max_concurrency`, or
    /// `"vegas"`, adapted to the app's latency (mesh-retry's Vegas) up to `max_concurrency`.
    #[serde(default)]
    pub limit: LimitName,
    /// At most this many inbound requests in flight to the app; beyond it, `503` at once. With
    /// `limit = "vegas"`, the upper bound of the adaptive limit. Default 1024: a fail-fast guard
    /// against overload, not a tuning knob.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    /// `[app.vegas]`: the adaptive limit's settings; only with `limit = "vegas"`.
    #[serde(default)]
    pub vegas: Option<VegasSettings>,
}

fn default_max_concurrency() -> u32 {
    1024
}

/// How the inbound concurrency limit is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitName {
    /// A fixed limit, `max_concurrency`.
    #[default]
    Fixed,
    /// An adaptive limit (TCP Vegas applied to requests): it grows while the app's latency stays
    /// near its minimum and shrinks when requests start to queue.
    Vegas,
}

/// `[app.vegas]`: settings of the adaptive inbound limit. Every key is optional; the defaults are
/// mesh-retry's `VegasConfig` defaults, lowered to `max_concurrency` when that is smaller.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VegasSettings {
    /// The limit once the first minimum-latency measurement is done. Default 20.
    pub initial_limit: Option<u32>,
    /// The limit never goes below this; it is also the limit while the minimum latency is
    /// measured. Default 3.
    pub min_limit: Option<u32>,
    /// How often the minimum latency is measured again, in milliseconds. Default 60 000.
    pub probe_interval_ms: Option<u64>,
    /// Requests measured per minimum-latency measurement. Default 50.
    pub probe_samples: Option<u32>,
}

/// An HTTP version on a hop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolName {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 (needed for gRPC).
    Http2,
}

/// How a service's endpoints are reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportName {
    /// Mutual TLS with SPIFFE identities (peer sidecars).
    #[default]
    Mtls,
    /// Plain TCP (a service outside the mesh).
    Plaintext,
}

/// `[identity]`: PEM files, read once at start and re-read every few seconds (rotation).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf.
    pub key: PathBuf,
    /// Trust bundles: trust domain → PEM file of its roots. Quote each trust domain
    /// (`"prod.example" = "roots.pem"`): TOML reads an unquoted `prod.example` as the key
    /// `prod` holding a table with the key `example`, which is refused with that advice.
    #[serde(deserialize_with = "trust_domain_files")]
    pub bundles: BTreeMap<String, PathBuf>,
    /// Whether the sidecar re-checks its open mTLS connections when a bundle file changes. Inbound,
    /// it closes gracefully (requests in progress finish) those whose client certificate no longer
    /// verifies; outbound, it retires the pooled connections whose backend certificate no longer
    /// verifies (requests in progress finish, the next request handshakes again against the new
    /// bundles). Removing a root then also cuts the connections it had admitted. Default `false`: a
    /// TLS connection keeps the trust decision of its handshake, and most bundle changes only add
    /// roots. Not accepted by the gateway (not wired there yet).
    #[serde(default)]
    pub recheck_connections_on_bundle_change: bool,
}

/// `identity.bundles`, refusing the nested tables an unquoted dotted key makes.
fn trust_domain_files<'de, D>(deserializer: D) -> Result<BTreeMap<String, PathBuf>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    let raw = BTreeMap::<String, toml::Value>::deserialize(deserializer)?;
    let mut files = BTreeMap::new();
    for (domain, value) in raw {
        match value {
            toml::Value::String(path) => {
                files.insert(domain, PathBuf::from(path));
            }
            toml::Value::Table(table) => {
                let dotted = dotted_key(domain, &table);
                return Err(D::Error::custom(format!(
                    "`identity.bundles`: the unquoted key {dotted} was read as nested keys (TOML \
                     splits bare keys at dots); quote the trust domain: \"{dotted}\" = …"
                )));
            }
            other => {
                return Err(D::Error::custom(format!(
                    "`identity.bundles.\"{domain}\"`: expected the path of a PEM file, found a {}",
                    other.type_str()
                )));
            }
        }
    }
    Ok(files)
}

/// `a` + `{ example = … }` → `a.example`, following single nested tables.
fn dotted_key(mut key: String, table: &toml::Table) -> String {
    let mut table = table;
    while let Some((part, value)) = table.iter().next() {
        key.push('.');
        key.push_str(part);
        match value {
            toml::Value::Table(inner) => table = inner,
            _ => break,
        }
    }
    key
}

/// `[locality]`: region / zone / subzone, all optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalityConfig {
    /// The region.
    #[serde(default)]
    pub region: String,
    /// The zone.
    #[serde(default)]
    pub zone: String,
    /// The subzone.
    #[serde(default)]
    pub subzone: String,
}

/// `[authorization]`: rules over the peer's SPIFFE ID, method, path prefix and host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// Log and count denials without enforcing them.
    #[serde(default)]
    pub dry_run: bool,
    /// Deny rules win over allow rules; with any allow rule, the default is deny.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// One `[[authorization.rules]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// `"allow"` or `"deny"`.
    pub action: RuleAction,
    /// Exact SPIFFE IDs of the peers this rule names.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Trust domains whose every workload this rule names.
    #[serde(default)]
    pub trust_domains: Vec<String>,
    /// Methods (any when empty).
    #[serde(default)]
    pub methods: Vec<String>,
    /// A path prefix (any path when absent).
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Hosts (any when empty).
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Let the request through.
    Allow,
    /// Refuse it with `403`.
    Deny,
}

/// `[services.NAME]`: one outbound service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The authorities (`host` or `host:port`) the local app uses for it; matched against the
    /// request's `:authority` / `Host`, case-insensitively. Required by the sidecar (at least
    /// one); the gateway routes by `[[routes]]` instead and refuses it.
    #[serde(default)]
    pub authorities: Vec<String>,
    /// Where its endpoints (the peers' inbound listeners) are.
    #[serde(deserialize_with = "discovery_config")]
    pub discovery: DiscoveryConfig,
    /// The SPIFFE ID every endpoint must present (overrides a per-endpoint identity when set).
    #[serde(default)]
    pub identity: Option<String>,
    /// How its endpoints are reached: `"mtls"` (default: peer sidecars) or `"plaintext"` (a
    /// service outside the mesh; no identity is checked, so `identity` must not be set).
    #[serde(default)]
    pub transport: TransportName,
    /// The HTTP version spoken to its endpoints: `"http2"` (default; what peer sidecars expect)
    /// or `"http1"` (pooled keep-alive connections, for plaintext HTTP/1.1-only services).
    #[serde(default)]
    pub protocol: Option<ProtocolName>,
    /// Overall deadline of one request, retries included, in milliseconds. Default 15 000
    /// (Envoy's default route timeout).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Retries.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The retry budget.
    #[serde(default)]
    pub budget: BudgetConfig,
    /// The per-endpoint circuit breaker.
    #[serde(default)]
    pub breaker: BreakerSettings,
    /// Outlier ejection.
    #[serde(default)]
    pub ejection: EjectionConfig,
    /// The HTTP/1.1 connection pool to each endpoint (`protocol = "http1"` only).
    #[serde(default)]
    pub pool: PoolConfig,
}

fn default_timeout_ms() -> u64 {
    15_000
}

/// `discovery = { kind = "static" | "file" | "dns" | "xds", ... }`, or the short form of xDS,
/// `discovery = { xds = "CLUSTER" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DiscoveryConfig {
    /// A fixed list.
    Static {
        /// The endpoints.
        endpoints: Vec<EndpointConfig>,
    },
    /// A TOML or JSON file in mesh-balance's endpoint-file format, re-read when it changes.
    File {
        /// The file.
        path: PathBuf,
        /// How often the file is checked for changes, in milliseconds (at least 100). Default
        /// 5000, mesh-balance's: quick enough for an edit by hand, and a `stat` every 5 s costs
        /// nothing.
        #[serde(default = "default_file_interval_ms")]
        interval_ms: u64,
    },
    /// A/AAAA records of `host`, with `port`, re-resolved at their TTL.
    Dns {
        /// The name.
        host: String,
        /// The port of every endpoint.
        port: u16,
        /// The name server (`ip:port`); default: the first `nameserver` of `/etc/resolv.conf`,
        /// port 53.
        #[serde(default)]
        nameserver: Option<String>,
    },
    /// The endpoints the `[xds]` control plane announces for a cluster (its EDS answer).
    Xds {
        /// The CDS cluster name, e.g. Istio's `outbound|8080||reviews.default.svc.cluster.local`.
        cluster: String,
    },
}

/// Reads `discovery`: the short form `{ xds = "CLUSTER" }`, or the tagged table (`kind = ...`).
fn discovery_config<'de, D>(deserializer: D) -> Result<DiscoveryConfig, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    let value = toml::Value::deserialize(deserializer)?;
    if let Some(table) = value.as_table()
        && let Some(cluster) = table.get("xds")
    {
        if table.len() > 1 {
            return Err(D::Error::custom(
                "the short form `{ xds = \"CLUSTER\" }` takes no other key",
            ));
        }
        let cluster = cluster
            .as_str()
            .ok_or_else(|| D::Error::custom("`xds` must be a cluster name (a string)"))?;
        return Ok(DiscoveryConfig::Xds {
            cluster: cluster.to_owned(),
        });
    }
    DiscoveryConfig::deserialize(value).map_err(D::Error::custom)
}

fn default_file_interval_ms() -> u64 {
    5000
}

/// One static endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// `ip:port` of the peer sidecar's inbound listener.
    pub address: String,
    /// Its SPIFFE ID.
    #[serde(default)]
    pub identity: Option<String>,
    /// Load-balancing weight (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Its region.
    #[serde(default)]
    pub region: String,
    /// Its zone.
    #[serde(default)]
    pub zone: String,
}

fn default_weight() -> u32 {
    1
}

/// `[services.NAME.retry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts including the first (1 disables retries). Default 3.
    pub max_attempts: u32,
    /// Deadline of each attempt, in milliseconds; 0 for none. Default 0.
    pub per_try_timeout_ms: u64,
    /// First backoff, in milliseconds. Default 25 (Envoy's base interval).
    pub backoff_base_ms: u64,
    /// Backoff cap, in milliseconds. Default 250 (10 × base, as Envoy).
    pub backoff_max_ms: u64,
    /// Whether a request that may have reached the server is retried only when its method is
    /// idempotent (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or listed in
    /// `methods`. Default `true`: a `POST` may have taken effect, and sending it again could
    /// repeat it. `false` retries every method. Either way, a request that was never sent (the
    /// connection failed) is retried, and so is a gRPC call answered `UNAVAILABLE` (or
    /// `RESOURCE_EXHAUSTED` with a `grpc-retry-pushback-ms` delay): gRPC calls are all `POST`,
    /// and those statuses say the call was not processed, as Envoy's `retry_on: unavailable`.
    pub idempotent_only: bool,
    /// Methods retried besides the idempotent ones, e.g. `["POST"]` for an API whose POSTs carry
    /// an idempotency key. Case-sensitive, as HTTP methods are. Default empty; only with
    /// `idempotent_only = true`.
    pub methods: Vec<String>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            per_try_timeout_ms: 0,
            backoff_base_ms: 25,
            backoff_max_ms: 250,
            idempotent_only: true,
            methods: Vec::new(),
        }
    }
}

/// `[services.NAME.budget]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Retries allowed as a share of requests. Default 0.2 (Linkerd's budget).
    pub ratio: f64,
    /// Retries always allowed per second. Default 10 (Linkerd).
    pub min_per_sec: u32,
    /// Window, in seconds. Default 10 (Linkerd).
    pub window_secs: u64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_sec: 10,
            window_secs: 10,
        }
    }
}

/// `[services.NAME.breaker]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Opens at this failure share over the last `window_calls` calls. Default 0.5.
    pub failure_rate: f64,
    /// The window of calls. Default 20.
    pub window_calls: u32,
    /// Calls needed in the window before it may open. Default 10.
    pub minimum_calls: u32,
    /// How long it stays open first, in milliseconds (doubling per re-open). Default 5000.
    pub open_ms: u64,
    /// Upper bound of the open time, in milliseconds. Default 60 000.
    pub max_open_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_rate: 0.5,
            window_calls: 20,
            minimum_calls: 10,
            open_ms: 5000,
            max_open_ms: 60_000,
        }
    }
}

/// `[services.NAME.ejection]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EjectionConfig {
    /// Consecutive failures that eject an endpoint. Default 5 (Envoy's `consecutive_5xx`).
    pub consecutive_failures: u32,
    /// First ejection, in milliseconds. Default 30 000 (Envoy's `base_ejection_time`).
    pub base_ejection_ms: u64,
    /// Longest ejection, in milliseconds. Default 300 000 (Envoy's `max_ejection_time`).
    pub max_ejection_ms: u64,
    /// Largest share of endpoints ejected at once (rounded down, and never all of them).
    /// Default 0.5, mesh-balance's: Envoy's 10 % ejects nothing from fewer than ten endpoints, so
    /// a dead endpoint of a small service would stay in rotation.
    pub max_ejected_share: f64,
}

impl Default for EjectionConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection_ms: 30_000,
            max_ejection_ms: 300_000,
            max_ejected_share: 0.5,
        }
    }
}

/// `[services.NAME.pool]`: the HTTP/1.1 connection pool to each endpoint. Used only with
/// `protocol = "http1"`: over HTTP/2 one multiplexed connection carries every request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// The most connections to one endpoint, which is also the most requests in flight to it (an
    /// HTTP/1.1 connection carries one at a time). At least 1. Default 64, mesh-core's. Clients
    /// that read large responses slowly hold their connection until they finish, so size it for
    /// them.
    pub max_connections: usize,
    /// How long a request waits for a busy pool to free a connection before it is answered
    /// `503` with `mesh-error: pool_exhausted`, in milliseconds. Below 3000, the balancer's
    /// fail-fast time, or a saturated endpoint would read as `no_endpoints`. Default 1000,
    /// mesh-core's: a connection frees in milliseconds unless it is held by a stalled response.
    pub wait_timeout_ms: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: 64,
            wait_timeout_ms: 1000,
        }
    }
}
