//! Semantic checks: from the parsed [`SidecarConfig`] to a [`Sidecar`] of ready-to-use values, or a
//! [`ConfigError::Invalid`] naming the dotted key path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Method;
use http::uri::Authority;
use mesh_balance::{BalanceConfig, OutlierConfig};
use mesh_core::client::Protocol;
use mesh_core::{Endpoint, Locality};
use mesh_retry::breaker::{BreakerConfig, BreakerMode, SlidingWindow};
use mesh_retry::budget::{WindowBudget, WindowBudgetConfig};
use mesh_retry::limit::{ConcurrencyConfig, LimitAlgorithm, VegasConfig};
use mesh_retry::retry::{ExponentialBackoff, RetryPolicy};
use mesh_tls::authz::{AuthzPolicy, AuthzRule};
use mesh_tls::{Authorizer, SpiffeId, TrustDomain};

use super::ConfigError;
use super::model::{
    AppConfig, AuthorizationConfig, DiscoveryConfig, IdentityConfig, LimitName, PoolConfig,
    ProtocolName, RetryConfig, RuleAction, RuleConfig, ServiceConfig, SidecarConfig, TransportName,
    XdsProtocolName, XdsSettings,
};

/// A checked configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Sidecar {
    /// mTLS listener for peer sidecars.
    pub inbound: SocketAddr,
    /// Plaintext listener for the local app's outbound calls.
    pub outbound: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// The local app.
    pub app: App,
    /// Identity files.
    pub identity: Identity,
    /// This sidecar's locality.
    pub locality: Locality,
    /// Inbound per-request authorization.
    pub authz: AuthzPolicy,
    /// Outbound services, in name order.
    pub services: Vec<Service>,
    /// Connection bounds of the inbound and outbound listeners (`[server]`).
    pub server: mesh_core::server::ServerConfig,
    /// How long a forwarded request body may stall (`[server] request_body_idle_timeout_ms`).
    pub request_body_idle_timeout: Option<std::time::Duration>,
    /// `service_name` and `[otlp]`.
    pub telemetry: crate::telemetry::TelemetryConfig,
    /// `[xds]`, when set.
    pub xds: Option<Xds>,
}

/// The checked `[xds]` table.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Xds {
    /// The client's settings (server, node id and cluster, protocol, this sidecar's locality);
    /// the sidecar adds its meter and seed.
    pub config: mesh_xds::XdsConfig,
    /// How long the sidecar waits at start for the clusters' policies (CDS).
    pub initial_fetch_timeout: Duration,
    /// The SPIFFE ID the control plane must prove; `Some` means mutual TLS with the sidecar's
    /// own identity (added by the sidecar once its identity is loaded).
    pub server_identity: Option<mesh_core::Identity>,
}

/// The local app.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct App {
    /// Its address.
    pub addr: SocketAddr,
    /// The HTTP version it speaks.
    pub protocol: Protocol,
    /// Inbound concurrency limit (the upper bound of an adaptive one).
    pub max_concurrency: u32,
    /// How the inbound limit is set: fixed at `max_concurrency`, or adaptive (Vegas).
    pub limit: LimitAlgorithm,
}

/// Identity files, checked to exist (their contents are checked when loaded).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Identity {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// One roots file per trust domain.
    pub bundles: Vec<(TrustDomain, PathBuf)>,
    /// Re-check live connections, inbound and outbound, when the bundles change
    /// (`identity.recheck_connections_on_bundle_change`).
    pub recheck_connections_on_bundle_change: bool,
}

/// One outbound service.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Service {
    /// Its name (the key under `[services]`).
    pub name: String,
    /// Lower-cased authorities that route to it.
    pub authorities: Vec<String>,
    /// Where its endpoints are.
    pub discovery: Discovery,
    /// mTLS (peer sidecars) or plaintext.
    pub transport: Transport,
    /// The HTTP version spoken to its endpoints.
    pub protocol: Protocol,
    /// Overall deadline per request.
    pub timeout: Duration,
    /// Retry policy (seed it before use).
    pub retry: RetryPolicy,
    /// Retry budget.
    pub budget: WindowBudgetConfig,
    /// Per-endpoint breaker, in gate mode (name, seed and meter set by the stack).
    pub breaker: BreakerConfig,
    /// Outlier ejection.
    pub outliers: OutlierConfig,
    /// HTTP/1.1 only: the most connections to one endpoint (at least 1).
    pub max_connections: usize,
    /// HTTP/1.1 only: how long a request waits for a free connection (below the balancer's
    /// 3 s fail-fast time).
    pub pool_wait_timeout: Duration,
}

/// How a service's endpoints are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// Mutual TLS: each endpoint must present an SVID of a configured trust domain (and the
    /// expected SPIFFE ID when one is set).
    Mtls,
    /// Plain TCP, for a service outside the mesh.
    Plaintext,
}

/// Where a service's endpoints come from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Discovery {
    /// A fixed list.
    Static(Vec<Endpoint>),
    /// An endpoint file, re-read when it changes; `identity` is applied to every endpoint without one.
    File {
        /// The file.
        path: PathBuf,
        /// How often it is checked for changes.
        interval: Duration,
        /// The SPIFFE ID expected of every endpoint, from the service's `identity`.
        identity: Option<String>,
    },
    /// A/AAAA records.
    Dns {
        /// The name.
        host: String,
        /// The port.
        port: u16,
        /// The name server asked.
        nameserver: SocketAddr,
        /// The SPIFFE ID expected of every endpoint, from the service's `identity`.
        identity: Option<String>,
    },
    /// The endpoints the `[xds]` control plane announces for a CDS cluster.
    Xds {
        /// The cluster's name.
        cluster: String,
        /// The SPIFFE ID expected of every endpoint, from the service's `identity`.
        identity: Option<String>,
    },
}

fn addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|e| {
        ConfigError::invalid(
            key,
            format!("{value:?} is not a socket address (ip:port): {e}"),
        )
    })
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn existing_file(key: &str, base: &Path, path: &Path) -> Result<PathBuf, ConfigError> {
    let full = base.join(path);
    if full.is_file() {
        Ok(full)
    } else {
        Err(ConfigError::invalid(
            key,
            format!("file {} does not exist", full.display()),
        ))
    }
}

fn spiffe_id(key: &str, value: &str) -> Result<SpiffeId, ConfigError> {
    value
        .parse()
        .map_err(|e| ConfigError::invalid(key, format!("{value:?} is not a SPIFFE ID: {e}")))
}

fn trust_domain(key: &str, value: &str) -> Result<TrustDomain, ConfigError> {
    value
        .parse()
        .map_err(|e| ConfigError::invalid(key, format!("{value:?} is not a trust domain: {e}")))
}

pub(super) fn resolve(raw: SidecarConfig, base: &Path) -> Result<Sidecar, ConfigError> {
    let inbound = addr("listeners.inbound", &raw.listeners.inbound)?;
    let outbound = addr("listeners.outbound", &raw.listeners.outbound)?;
    let admin = addr("listeners.admin", &raw.listeners.admin)?;
    let app = App {
        addr: addr("app.address", &raw.app.address)?,
        protocol: match raw.app.protocol {
            ProtocolName::Http1 => Protocol::Http1,
            ProtocolName::Http2 => Protocol::Http2,
        },
        max_concurrency: raw.app.max_concurrency,
        limit: inbound_limit(&raw.app)?,
    };
    let identity = identity(&raw.identity, base)?;
    let locality = Locality::new(
        &raw.locality.region,
        &raw.locality.zone,
        &raw.locality.subzone,
    );
    let authz = authorization(&raw.authorization)?;
    let mut services = Vec::new();
    let mut owners: HashMap<String, String> = HashMap::new();
    for (name, config) in &raw.services {
        let service = service(name, config, base)?;
        for (i, authority) in service.authorities.iter().enumerate() {
            if let Some(other) = owners.insert(authority.clone(), name.clone()) {
                return Err(ConfigError::invalid(
                    format!("services.{name}.authorities[{i}]"),
                    format!("{authority:?} already routes to service {other:?}"),
                ));
            }
        }
        if matches!(service.discovery, Discovery::Xds { .. }) && raw.xds.is_none() {
            return Err(ConfigError::invalid(
                format!("services.{name}.discovery"),
                "xDS discovery needs an `[xds]` table naming the control plane",
            ));
        }
        services.push(service);
    }
    let xds = raw
        .xds
        .as_ref()
        .map(|xds| xds_settings(xds, &locality))
        .transpose()?;
    Ok(Sidecar {
        inbound,
        outbound,
        admin,
        app,
        identity,
        locality,
        authz,
        services,
        server: raw.server.resolve()?,
        request_body_idle_timeout: raw.server.request_body_idle_timeout(),
        telemetry: crate::telemetry::resolve(raw.service_name.as_deref(), raw.otlp.as_ref())?,
        xds,
    })
}

/// `[xds]`: a bare `ip:port` server becomes `http://ip:port`; mesh-xds checks the rest.
fn xds_settings(raw: &XdsSettings, locality: &Locality) -> Result<Xds, ConfigError> {
    let scheme = match raw.server_identity {
        Some(_) => "https",
        None => "http",
    };
    let server = if raw.server.contains("://") {
        raw.server.clone()
    } else {
        format!("{scheme}://{}", addr("xds.server", &raw.server)?)
    };
    let server_identity = match &raw.server_identity {
        None => None,
        Some(id) if !id.starts_with("spiffe://") => {
            return Err(ConfigError::invalid(
                "xds.server_identity",
                format!("`{id}` is not a SPIFFE ID (spiffe://trust-domain/path)"),
            ));
        }
        Some(id) => Some(
            mesh_core::Identity::new(id)
                .map_err(|e| ConfigError::invalid("xds.server_identity", e))?,
        ),
    };
    let config = mesh_xds::XdsConfig::new(server, raw.node_id.clone())
        .node_cluster(raw.node_cluster.clone())
        .locality(locality.clone())
        .protocol(match raw.protocol {
            XdsProtocolName::Sotw => mesh_xds::Protocol::StateOfTheWorld,
            XdsProtocolName::Delta => mesh_xds::Protocol::Delta,
        });
    // The TLS settings need the identity, loaded later: an `https` server is checked here.
    if server_identity.is_none() && config.server.starts_with("https://") {
        return Err(ConfigError::invalid(
            "xds.server",
            "an `https` control plane needs `server_identity` (the SPIFFE ID it must prove)",
        ));
    }
    if server_identity.is_none()
        && let Err(mesh_xds::XdsError::Config { field, reason }) = config.validate()
    {
        return Err(ConfigError::invalid(format!("xds.{field}"), reason));
    }
    if raw.initial_fetch_timeout_ms == 0 {
        return Err(ConfigError::invalid(
            "xds.initial_fetch_timeout_ms",
            "must be at least 1",
        ));
    }
    Ok(Xds {
        config,
        initial_fetch_timeout: ms(raw.initial_fetch_timeout_ms),
        server_identity,
    })
}

/// The inbound limit of `[app]`, checked by mesh-retry; its keys are reported under `app.`.
fn inbound_limit(raw: &AppConfig) -> Result<LimitAlgorithm, ConfigError> {
    let max = raw.max_concurrency;
    if max == 0 {
        return Err(ConfigError::invalid(
            "app.max_concurrency",
            "must be at least 1",
        ));
    }
    let algorithm = match (raw.limit, &raw.vegas) {
        (LimitName::Fixed, None) => LimitAlgorithm::Fixed(max),
        (LimitName::Fixed, Some(_)) => {
            return Err(ConfigError::invalid(
                "app.vegas",
                "only used with `app.limit = \"vegas\"`",
            ));
        }
        (LimitName::Vegas, settings) => {
            let settings = settings.clone().unwrap_or_default();
            let defaults = VegasConfig::default();
            let mut vegas = VegasConfig::default().limits(
                settings
                    .initial_limit
                    .unwrap_or(defaults.get_initial_limit().min(max)),
                settings
                    .min_limit
                    .unwrap_or(defaults.get_min_limit().min(max)),
                max,
            );
            if let Some(ms) = settings.probe_interval_ms {
                vegas = vegas.probe_interval(Duration::from_millis(ms));
            }
            if let Some(samples) = settings.probe_samples {
                vegas = vegas.probe_samples(samples);
            }
            LimitAlgorithm::Vegas(vegas)
        }
    };
    let check = ConcurrencyConfig::fixed(1).algorithm(algorithm);
    check.validate().map_err(|e| {
        let key = match e.key() {
            "vegas.max_limit" => "app.max_concurrency".to_owned(),
            "vegas.probe_interval" => "app.vegas.probe_interval_ms".to_owned(),
            key => format!("app.{key}"),
        };
        ConfigError::invalid(key, e.reason())
    })?;
    Ok(algorithm)
}

pub(crate) fn identity(raw: &IdentityConfig, base: &Path) -> Result<Identity, ConfigError> {
    let cert = existing_file("identity.cert", base, &raw.cert)?;
    let key = existing_file("identity.key", base, &raw.key)?;
    if raw.bundles.is_empty() {
        return Err(ConfigError::invalid(
            "identity.bundles",
            "needs at least one trust domain's roots",
        ));
    }
    let mut bundles = Vec::new();
    for (domain, path) in &raw.bundles {
        let key = crate::identity::check::bundle_key(domain);
        bundles.push((
            trust_domain(&key, domain)?,
            existing_file(&key, base, path)?,
        ));
    }
    Ok(Identity {
        cert,
        key,
        bundles,
        recheck_connections_on_bundle_change: raw.recheck_connections_on_bundle_change,
    })
}

fn authorization(raw: &AuthorizationConfig) -> Result<AuthzPolicy, ConfigError> {
    let mut policy = AuthzPolicy::new().dry_run(raw.dry_run);
    for (i, rule_config) in raw.rules.iter().enumerate() {
        let rule = rule(&format!("authorization.rules[{i}]"), rule_config)?;
        policy = match rule_config.action {
            RuleAction::Allow => policy.allow(rule),
            RuleAction::Deny => policy.deny(rule),
        };
    }
    Ok(policy)
}

fn rule(key: &str, raw: &RuleConfig) -> Result<AuthzRule, ConfigError> {
    let mut authorizers = Vec::new();
    if !raw.peers.is_empty() {
        let ids = raw
            .peers
            .iter()
            .enumerate()
            .map(|(i, id)| spiffe_id(&format!("{key}.peers[{i}]"), id))
            .collect::<Result<Vec<_>, _>>()?;
        authorizers.push(Authorizer::ids(ids));
    }
    if !raw.trust_domains.is_empty() {
        let domains = raw
            .trust_domains
            .iter()
            .enumerate()
            .map(|(i, d)| trust_domain(&format!("{key}.trust_domains[{i}]"), d))
            .collect::<Result<Vec<_>, _>>()?;
        authorizers.push(Authorizer::trust_domains(domains));
    }
    let mut rule = if authorizers.is_empty() {
        AuthzRule::any_authenticated()
    } else {
        AuthzRule::peers(Authorizer::any_of(authorizers))
    };
    if !raw.methods.is_empty() {
        let methods = raw
            .methods
            .iter()
            .enumerate()
            .map(|(i, m)| {
                Method::from_bytes(m.as_bytes()).map_err(|_| {
                    ConfigError::invalid(
                        format!("{key}.methods[{i}]"),
                        format!("{m:?} is not an HTTP method"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        rule = rule.methods(methods);
    }
    if let Some(prefix) = &raw.path_prefix {
        if !prefix.starts_with('/') {
            return Err(ConfigError::invalid(
                format!("{key}.path_prefix"),
                format!("{prefix:?} must start with '/'"),
            ));
        }
        rule = rule.path_prefix(prefix.clone());
    }
    if !raw.hosts.is_empty() {
        rule = rule.hosts(raw.hosts.iter().cloned());
    }
    Ok(rule)
}

pub(crate) fn service(
    name: &str,
    raw: &ServiceConfig,
    base: &Path,
) -> Result<Service, ConfigError> {
    let key = format!("services.{name}");
    if raw.authorities.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.authorities"),
            "needs at least one authority (host or host:port)",
        ));
    }
    let mut authorities = Vec::new();
    for (i, authority) in raw.authorities.iter().enumerate() {
        if authority.is_empty() || authority.parse::<Authority>().is_err() {
            return Err(ConfigError::invalid(
                format!("{key}.authorities[{i}]"),
                format!("{authority:?} is not a host or host:port"),
            ));
        }
        authorities.push(authority.to_ascii_lowercase());
    }
    if let Some(id) = &raw.identity {
        spiffe_id(&format!("{key}.identity"), id)?;
    }
    let transport = match raw.transport {
        TransportName::Mtls => Transport::Mtls,
        TransportName::Plaintext => Transport::Plaintext,
    };
    let per_endpoint_identity = match &raw.discovery {
        DiscoveryConfig::Static { endpoints } => endpoints.iter().any(|ep| ep.identity.is_some()),
        _ => false,
    };
    if transport == Transport::Plaintext && (raw.identity.is_some() || per_endpoint_identity) {
        return Err(ConfigError::invalid(
            format!("{key}.transport"),
            "\"plaintext\" checks no identity: remove the service's and its endpoints' `identity`, or use \"mtls\"",
        ));
    }
    let protocol = match raw.protocol.unwrap_or(ProtocolName::Http2) {
        ProtocolName::Http1 => Protocol::Http1,
        ProtocolName::Http2 => Protocol::Http2,
    };
    let discovery = discovery(&key, raw, base)?;
    if raw.timeout_ms == 0 {
        return Err(ConfigError::invalid(
            format!("{key}.timeout_ms"),
            "must be at least 1",
        ));
    }
    let r = &raw.retry;
    let retry_key = format!("{key}.retry");
    let backoff = ExponentialBackoff::new(ms(r.backoff_base_ms), ms(r.backoff_max_ms))
        .map_err(|e| ConfigError::invalid(&retry_key, e))?;
    let retry = RetryPolicy::default()
        .max_attempts(r.max_attempts)
        .backoff(backoff)
        .per_try_timeout((r.per_try_timeout_ms > 0).then(|| ms(r.per_try_timeout_ms)))
        .idempotent_only(r.idempotent_only)
        .retryable_methods(retry_methods(&retry_key, r)?);
    retry
        .validate()
        .map_err(|e| ConfigError::invalid(&retry_key, e))?;
    let b = &raw.budget;
    let budget = WindowBudgetConfig::default()
        .ratio(b.ratio)
        .min_per_sec(b.min_per_sec)
        .window(Duration::from_secs(b.window_secs));
    if b.window_secs == 0 {
        return Err(ConfigError::invalid(
            format!("{key}.budget.window_secs"),
            "must be at least 1",
        ));
    }
    // The budget checks its settings when it is built; build one here to report them early.
    WindowBudget::new(budget.clone()).map_err(|e| e.within(&format!("{key}.budget")))?;
    let k = &raw.breaker;
    let breaker = BreakerConfig::new()
        .failure_rate(
            SlidingWindow::Calls(k.window_calls),
            k.minimum_calls,
            k.failure_rate,
        )
        .open_duration(ms(k.open_ms), 2.0, ms(k.max_open_ms))
        .mode(BreakerMode::Gate);
    breaker
        .validate()
        .map_err(|e| ConfigError::invalid(format!("{key}.breaker"), e))?;
    let e = &raw.ejection;
    let outliers = OutlierConfig::default()
        .consecutive_failures(e.consecutive_failures)
        .base_ejection(ms(e.base_ejection_ms))
        .max_ejection(ms(e.max_ejection_ms))
        .max_ejected_share(e.max_ejected_share);
    BalanceConfig::default()
        .outliers(outliers)
        .validate()
        .map_err(|err| {
            // The TOML `ejection` table holds the balancer's `outliers` settings.
            let field = err.key().strip_prefix("outliers.").unwrap_or(err.key());
            mesh_core::ConfigError::new(field.to_owned(), err.reason().to_owned())
                .within(&format!("{key}.ejection"))
        })?;
    let (max_connections, pool_wait_timeout) = pool(&key, &raw.pool)?;
    Ok(Service {
        name: name.to_owned(),
        authorities,
        discovery,
        transport,
        protocol,
        timeout: ms(raw.timeout_ms),
        retry,
        budget,
        breaker,
        outliers,
        max_connections,
        pool_wait_timeout,
    })
}

/// The `methods` of a `[services.NAME.retry]` table (`key` is the table's path).
fn retry_methods(key: &str, raw: &RetryConfig) -> Result<Vec<Method>, ConfigError> {
    if !raw.idempotent_only && !raw.methods.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.methods"),
            "has no effect with `idempotent_only = false`, which retries every method",
        ));
    }
    raw.methods
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let key = format!("{key}.methods[{i}]");
            let method = Method::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError::invalid(&key, format!("{name:?} is not an HTTP method"))
            })?;
            let upper = name.to_ascii_uppercase();
            if upper != *name && Method::from_bytes(upper.as_bytes()).is_ok_and(|m| is_standard(&m))
            {
                return Err(ConfigError::invalid(
                    key,
                    format!("methods are case-sensitive: {name:?} is not {upper:?}"),
                ));
            }
            Ok(method)
        })
        .collect()
}

/// Whether `method` is one of the methods HTTP defines (not an extension method).
fn is_standard(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ]
    .contains(method)
}

/// The balancer's fail-fast time in the stack (mesh-balance's default): a pool wait at least this
/// long would let the balancer answer `no_endpoints` first.
const BALANCER_FAIL_FAST_MS: u64 = 3000;

fn pool(key: &str, raw: &PoolConfig) -> Result<(usize, Duration), ConfigError> {
    if raw.max_connections == 0 {
        return Err(ConfigError::invalid(
            format!("{key}.pool.max_connections"),
            "must be at least 1",
        ));
    }
    if raw.wait_timeout_ms >= BALANCER_FAIL_FAST_MS {
        return Err(ConfigError::invalid(
            format!("{key}.pool.wait_timeout_ms"),
            format!(
                "must be below {BALANCER_FAIL_FAST_MS} (the balancer's fail-fast time), or a saturated endpoint is reported as no_endpoints"
            ),
        ));
    }
    Ok((raw.max_connections, ms(raw.wait_timeout_ms)))
}

fn discovery(key: &str, raw: &ServiceConfig, base: &Path) -> Result<Discovery, ConfigError> {
    let key = format!("{key}.discovery");
    Ok(match &raw.discovery {
        DiscoveryConfig::Static { endpoints } => {
            if endpoints.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.endpoints"),
                    "needs at least one endpoint",
                ));
            }
            let mut list = Vec::new();
            for (i, ep) in endpoints.iter().enumerate() {
                let key = format!("{key}.endpoints[{i}]");
                let address = addr(&format!("{key}.address"), &ep.address)?;
                let mut builder = Endpoint::builder(address)
                    .weight(ep.weight)
                    .locality(Locality::new(&ep.region, &ep.zone, ""));
                if let Some(id) = raw.identity.as_ref().or(ep.identity.as_ref()) {
                    spiffe_id(&format!("{key}.identity"), id)?;
                    builder = builder.identity(id);
                }
                list.push(builder.build().map_err(|e| ConfigError::invalid(&key, e))?);
            }
            Discovery::Static(list)
        }
        DiscoveryConfig::File { path, interval_ms } => {
            if *interval_ms < MIN_FILE_INTERVAL_MS {
                return Err(ConfigError::invalid(
                    format!("{key}.interval_ms"),
                    format!("must be at least {MIN_FILE_INTERVAL_MS}"),
                ));
            }
            Discovery::File {
                path: existing_file(&format!("{key}.path"), base, path)?,
                interval: ms(*interval_ms),
                identity: raw.identity.clone(),
            }
        }
        DiscoveryConfig::Dns {
            host,
            port,
            nameserver,
        } => {
            if host.is_empty() || host.parse::<Authority>().is_err() {
                return Err(ConfigError::invalid(
                    format!("{key}.host"),
                    format!("{host:?} is not a DNS name"),
                ));
            }
            if *port == 0 {
                return Err(ConfigError::invalid(format!("{key}.port"), "must not be 0"));
            }
            let nameserver = match nameserver {
                Some(value) => addr(&format!("{key}.nameserver"), value)?,
                None => system_nameserver().ok_or_else(|| {
                    ConfigError::invalid(
                        format!("{key}.nameserver"),
                        "not set, and /etc/resolv.conf names no name server",
                    )
                })?,
            };
            Discovery::Dns {
                host: host.clone(),
                port: *port,
                nameserver,
                identity: raw.identity.clone(),
            }
        }
        DiscoveryConfig::Xds { cluster } => {
            if cluster.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.xds"),
                    "must name a cluster",
                ));
            }
            Discovery::Xds {
                cluster: cluster.clone(),
                identity: raw.identity.clone(),
            }
        }
    })
}

/// The shortest endpoint-file check interval: mesh-balance raises anything shorter to it, so a
/// smaller value in the file would not mean what it says.
const MIN_FILE_INTERVAL_MS: u64 = 100;

/// The first `nameserver` of `/etc/resolv.conf`, on port 53.
fn system_nameserver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next()?.parse().ok())
            .flatten()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}
