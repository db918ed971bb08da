//! The TOML shape of the gateway configuration. Every table rejects unknown keys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{IdentityConfig, LocalityConfig, ServiceConfig};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The public and admin listening addresses.
    pub listeners: GatewayListeners,
    /// TLS termination on the public listener with an ordinary server certificate. Absent:
    /// plaintext.
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
    /// The gateway's mesh identity (SVID and trust bundles), used for mTLS to upstream services.
    pub identity: IdentityConfig,
    /// Where the gateway runs; upstream balancing prefers endpoints close to it.
    #[serde(default)]
    pub locality: LocalityConfig,
    /// Per-client token-bucket limit on the public listener. Absent: no limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSettings>,
    /// Edge routes, matched by host, then by the longest path prefix.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Upstream services by name: the sidecar's `[services.NAME]` tables without `authorities`.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
    /// Connection bounds of the public listener. Absent: mesh-core's defaults.
    #[serde(default)]
    pub server: crate::runtime::ServerSettings,
    /// The `service.name` of this process's spans and metrics (a top-level key, written before
    /// the first table). Default: the binary's name, `mesh-gateway`.
    #[serde(default)]
    pub service_name: Option<String>,
    /// `[otlp]`: export of spans and metrics over OTLP/HTTP, as the sidecar's. Absent: no export.
    #[serde(default)]
    pub otlp: Option<crate::telemetry::OtlpSettings>,
}

/// `[listeners]`: socket addresses (`ip:port`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayListeners {
    /// Where clients connect (plaintext, or TLS with `[tls]`).
    pub public: String,
    /// `/live`, `/ready`, `/metrics` (plaintext; bind it to loopback).
    pub admin: String,
}

/// `[tls]`: the public listener's certificate, as PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf.
    pub key: PathBuf,
}

/// `[rate_limit]`: one token bucket per client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Tokens added per second (may be fractional).
    pub per_second: f64,
    /// Bucket capacity. Default: one second's worth, at least 1 (mesh-retry's default).
    #[serde(default)]
    pub burst: Option<u32>,
    /// The client key: `"client_ip"` (default, the TCP peer address) or `"header:NAME"` (one
    /// bucket per value of header `NAME`, e.g. an API key; requests without it share one bucket).
    #[serde(default = "default_rate_key")]
    pub key: String,
}

fn default_rate_key() -> String {
    "client_ip".to_owned()
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The host the request must name (`Host` / `:authority`, port ignored, case-insensitive).
    /// Absent: any host.
    #[serde(default)]
    pub host: Option<String>,
    /// The path prefix, starting with `/`; matched on whole segments (`/api` matches `/api` and
    /// `/api/x`, not `/apix`).
    pub path_prefix: String,
    /// The upstream service, a key of `[services]`.
    pub service: String,
    /// Headers set on the upstream request (replacing any the client sent).
    #[serde(default)]
    pub add_headers: BTreeMap<String, String>,
    /// Headers removed from the upstream request.
    #[serde(default)]
    pub remove_headers: Vec<String>,
}
