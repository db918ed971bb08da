//! Semantic checks: from [`GatewayConfig`] to a [`Gateway`] of ready-to-use values, or a
//! [`ConfigError::Invalid`] naming the dotted key path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use http::header::{HeaderName, HeaderValue};
use mesh_core::Locality;

use super::model::{GatewayConfig, RateLimitSettings, RouteConfig, ServerTlsConfig};
use crate::config::{ConfigError, Identity, Service, resolve_identity, resolve_service};

/// A checked gateway configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Gateway {
    /// The public listener.
    pub public: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// TLS termination on the public listener, if configured.
    pub tls: Option<ServerTls>,
    /// The mesh identity for mTLS to upstreams.
    pub identity: Identity,
    /// The gateway's locality.
    pub locality: Locality,
    /// The per-client rate limit, if any.
    pub rate_limit: Option<RateLimit>,
    /// Routes, in file order.
    pub routes: Vec<Route>,
    /// Upstream services, in name order (their `authorities` are empty).
    pub services: Vec<Service>,
    /// Connection bounds of the public listener (`[server]`).
    pub server: mesh_core::server::ServerConfig,
    /// How long a forwarded request body may stall (`[server] request_body_idle_timeout_ms`).
    pub request_body_idle_timeout: Option<std::time::Duration>,
    /// `service_name` and `[otlp]`.
    pub telemetry: crate::telemetry::TelemetryConfig,
}

/// Certificate files of the public listener, checked to exist.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerTls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// A checked rate limit.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RateLimit {
    /// Tokens per second (finite, positive).
    pub per_second: f64,
    /// Bucket capacity, if set (at least 1).
    pub burst: Option<u32>,
    /// Which bucket a request draws from.
    pub key: RateKey,
}

/// The client key of the rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateKey {
    /// The TCP peer's IP address.
    ClientIp,
    /// The value of this request header.
    Header(HeaderName),
}

/// A checked route.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Route {
    /// Host without port, lower-cased and without a trailing dot, or `None` for any host.
    pub host: Option<String>,
    /// The path prefix (starts with `/`; a trailing `/` is removed unless it is the whole prefix).
    pub path_prefix: String,
    /// Index of the upstream service in [`Gateway::services`].
    pub service: usize,
    /// Headers set on the upstream request.
    pub add_headers: Vec<(HeaderName, HeaderValue)>,
    /// Headers removed from the upstream request.
    pub remove_headers: Vec<HeaderName>,
}

fn addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|e| {
        ConfigError::invalid(
            key,
            format!("{value:?} is not a socket address (ip:port): {e}"),
        )
    })
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

fn header_name(key: &str, name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError::invalid(key, format!("{name:?} is not a header name")))
}

pub(super) fn resolve(raw: GatewayConfig, base: &Path) -> Result<Gateway, ConfigError> {
    let public = addr("listeners.public", &raw.listeners.public)?;
    let admin = addr("listeners.admin", &raw.listeners.admin)?;
    let tls = raw.tls.as_ref().map(|t| tls(t, base)).transpose()?;
    let identity = resolve_identity(&raw.identity, base)?;
    if identity.recheck_connections_on_bundle_change {
        return Err(ConfigError::invalid(
            "identity.recheck_connections_on_bundle_change",
            "the gateway accepts no mTLS connections to re-check (its identity is for upstreams)",
        ));
    }
    let locality = Locality::new(
        &raw.locality.region,
        &raw.locality.zone,
        &raw.locality.subzone,
    );
    let rate_limit = raw.rate_limit.as_ref().map(rate_limit).transpose()?;
    let mut services = Vec::new();
    let mut index = BTreeMap::new();
    for (name, config) in &raw.services {
        if !config.authorities.is_empty() {
            return Err(ConfigError::invalid(
                format!("services.{name}.authorities"),
                "not used by the gateway: route with [[routes]] instead",
            ));
        }
        // The sidecar's checks want an authority; the gateway never routes by it.
        let mut config = config.clone();
        config.authorities = vec!["gateway".to_owned()];
        let mut service = resolve_service(name, &config, base)?;
        if matches!(service.discovery, crate::config::Discovery::Xds { .. }) {
            return Err(ConfigError::invalid(
                format!("services.{name}.discovery"),
                "xDS discovery is the sidecar's (its `[xds]` table); the gateway has none yet",
            ));
        }
        service.authorities.clear();
        index.insert(name.clone(), services.len());
        services.push(service);
    }
    let routes = raw
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| route(&format!("routes[{i}]"), r, &index))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Gateway {
        public,
        admin,
        tls,
        identity,
        locality,
        rate_limit,
        routes,
        services,
        server: raw.server.resolve()?,
        request_body_idle_timeout: raw.server.request_body_idle_timeout(),
        telemetry: crate::telemetry::resolve(raw.service_name.as_deref(), raw.otlp.as_ref())?,
    })
}

fn tls(raw: &ServerTlsConfig, base: &Path) -> Result<ServerTls, ConfigError> {
    Ok(ServerTls {
        cert: existing_file("tls.cert", base, &raw.cert)?,
        key: existing_file("tls.key", base, &raw.key)?,
    })
}

fn rate_limit(raw: &RateLimitSettings) -> Result<RateLimit, ConfigError> {
    if !raw.per_second.is_finite() || raw.per_second <= 0.0 {
        return Err(ConfigError::invalid(
            "rate_limit.per_second",
            "must be a positive number",
        ));
    }
    if raw.burst == Some(0) {
        return Err(ConfigError::invalid(
            "rate_limit.burst",
            "must be at least 1",
        ));
    }
    let key = match raw.key.as_str() {
        "client_ip" => RateKey::ClientIp,
        other => match other.strip_prefix("header:") {
            Some(name) => RateKey::Header(header_name("rate_limit.key", name)?),
            None => {
                return Err(ConfigError::invalid(
                    "rate_limit.key",
                    format!("{other:?} is neither \"client_ip\" nor \"header:NAME\""),
                ));
            }
        },
    };
    Ok(RateLimit {
        per_second: raw.per_second,
        burst: raw.burst,
        key,
    })
}

fn route(
    key: &str,
    raw: &RouteConfig,
    services: &BTreeMap<String, usize>,
) -> Result<Route, ConfigError> {
    let host = match &raw.host {
        Some(host) if host.is_empty() || host.contains([':', '/', ' ']) => {
            return Err(ConfigError::invalid(
                format!("{key}.host"),
                format!("{host:?} is not a host name (no port, no path)"),
            ));
        }
        host => host
            .as_ref()
            .map(|h| mesh_core::proxy::canonical_host(h).into_owned()),
    };
    if !raw.path_prefix.starts_with('/') {
        return Err(ConfigError::invalid(
            format!("{key}.path_prefix"),
            format!("{:?} must start with '/'", raw.path_prefix),
        ));
    }
    let mut path_prefix = raw.path_prefix.clone();
    while path_prefix.len() > 1 && path_prefix.ends_with('/') {
        path_prefix.pop();
    }
    let Some(&service) = services.get(&raw.service) else {
        return Err(ConfigError::invalid(
            format!("{key}.service"),
            format!("{:?} is not a key of [services]", raw.service),
        ));
    };
    let mut add_headers = Vec::new();
    for (name, value) in &raw.add_headers {
        let k = format!("{key}.add_headers.{name}");
        let value = HeaderValue::from_str(value)
            .map_err(|_| ConfigError::invalid(&k, format!("{value:?} is not a header value")))?;
        add_headers.push((header_name(&k, name)?, value));
    }
    let remove_headers = raw
        .remove_headers
        .iter()
        .enumerate()
        .map(|(i, name)| header_name(&format!("{key}.remove_headers[{i}]"), name))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Route {
        host,
        path_prefix,
        service,
        add_headers,
        remove_headers,
    })
}
