//! An xDS client for the mesh-* stack: join a mesh whose control plane speaks Envoy's discovery
//! protocol (Istio, Kuma, go-control-plane fleets, gRPC proxyless meshes).
//!
//! This crate speaks the **Aggregated Discovery Service** (ADS), in both its variants
//! ([`Protocol`]): **State-of-the-World** (the default; every control plane has it) and **Delta**
//! (incremental; see [Delta](#delta)). One gRPC stream per control plane carries both cluster
//! (CDS) and endpoint (EDS) resources. Endpoints become a [`tower::discover::Discover`] stream of
//! [`mesh_core::Endpoint`] that mesh-balance's [`Balance`](mesh_balance::Balance) (or tower's)
//! consumes directly; clusters become a [`ClusterPolicy`] each.
//!
//! # Data flow
//!
//! ```text
//! XdsClient::connect(XdsConfig)        spawns one stream task; returns at once
//!   stream task ── gRPC ADS stream (SotW or Delta) ──▶ control plane
//!     │  requests:  CDS wildcard + EDS for the subscribed cluster names, ACK / NACK
//!     │  responses: DiscoveryResponse (type_url, version_info, nonce, resources)
//!     ▼
//!   per type URL: last accepted version + last nonce          (ads::TypeState)
//!     │  every resource is validated first; one bad resource → the whole response is
//!     │  NACKed, nothing applied
//!     ├─ CDS: each Cluster → a ClusterPolicy                  (XdsClient::policies)
//!     ▼
//!   EDS, per cluster: ClusterLoadAssignment → endpoints        (endpoints_from_assignment)
//!     → a mesh-balance DiscoverHandle                         (set = one snapshot)
//!     │  the handle diffs snapshots: an unchanged endpoint is never re-inserted,
//!     │  so its PeakEWMA, outlier gate and slow-start ramp survive the update
//!     ▼
//!   XdsClient::discover("cluster") → HandleDiscover → Balance::new(discover, make, config)
//! ```
//!
//! Status (connected, stream attempts, accepted and NACKed updates per type URL, the last NACK
//! message, the clusters CDS named and the clusters whose first EDS answer arrived) is published
//! on a [`tokio::sync::watch`] channel, [`XdsClient::status`], so callers and tests wait on a
//! condition instead of sleeping.
//!
//! # The protocol rules we follow
//!
//! - **ACK** = a request of the same type URL carrying the accepted response's `version_info` and
//!   its `nonce` as `response_nonce`.
//! - **NACK** = the *previous* accepted `version_info`, the rejected response's nonce, and an
//!   `error_detail` (`google.rpc.Status`, code `INVALID_ARGUMENT`) whose message names the
//!   cluster, the endpoint and the reason. Nothing of a NACKed response is applied: the last good
//!   endpoints keep serving.
//! - **NACK pacing**: a control plane may answer a NACK at once with the same bad version
//!   (go-control-plane's snapshot cache does), which would trade NACKs as fast as the network
//!   allows. The first NACK after an accepted response goes out at once; each further one in a row
//!   waits one step of the reconnect backoff below; a newer response supersedes a held NACK.
//! - **Subscriptions**: CDS is a wildcard subscription (no names). EDS names exactly the clusters
//!   someone asked for through [`XdsClient::discover`]; a change to that set is sent at once with
//!   the current EDS version and nonce. SotW EDS is not "full state": a cluster missing from a
//!   response keeps its endpoints. [`XdsClient::unsubscribe`] drops a name; its streams keep their
//!   last set. (When the last name goes, SotW sends an empty list, which older control planes read
//!   as a wildcard: their answers for clusters nobody asks for are dropped.)
//! - **Reconnect**: when the stream fails or ends, the task waits a jittered exponential backoff
//!   (gRPC's connection-backoff defaults: 1 s initial, × 1.6, ±20 % jitter, 120 s cap; seedable
//!   RNG, tokio time) and opens a new stream. The new stream starts fresh (empty versions and
//!   nonces), so the control plane resends everything; the diffing handles make the repeat a
//!   no-op for unchanged endpoints. While away, every handle keeps its last accepted set: a
//!   control-plane restart never drops the data plane to zero endpoints. The backoff resets once a
//!   stream delivers a response.
//!
//! # Delta
//!
//! Subscriptions are sent as changes (`resource_names_subscribe` / `_unsubscribe`; CDS as a
//! wildcard), an ACK is the response's nonce, a NACK adds `error_detail`, and
//! `system_version_info` is what [`XdsStatus::versions`] shows. A response carries only changed
//! resources: a removed cluster leaves the CDS set, while a removed endpoint assignment keeps its
//! last endpoints (logged) — removing the cluster from CDS is what retires it. A new stream
//! subscribes afresh without `initial_resource_versions`, so everything is resent and the diffing
//! handles absorb the repeat.
//!
//! # EDS mapping
//!
//! | xDS | mesh |
//! |---|---|
//! | socket address (IP literal) + `port_value` | [`Endpoint::addr`](mesh_core::Endpoint::addr); a host name, a named port, a pipe or port 0 is invalid |
//! | `load_balancing_weight` | [`Weight`](mesh_core::Weight); absent = 1, 0 is invalid |
//! | locality region / zone / sub_zone | [`Locality`](mesh_core::Locality) (mesh-balance's locality tiers) |
//! | `priority` | label `xds.priority` (see below) |
//! | `health_status` HEALTHY, UNKNOWN, DEGRADED | kept |
//! | `health_status` UNHEALTHY, TIMEOUT | removed |
//! | `health_status` DRAINING | removed (see below) |
//! | metadata `filter_metadata["envoy.lb"]` string fields | labels (what Envoy's subset balancer reads) |
//! | the same address twice in one cluster | invalid (NACK) |
//!
//! Gaps, on purpose for now: mesh-balance's tiers come from locality proximity, not from xDS
//! priorities, so the priority is carried as a label and not yet routed on; and mesh-balance has
//! no "drain" state, so a DRAINING endpoint is removed — which has the same effect for new
//! requests (no new picks) while the balancer lets requests already in flight finish.
//!
//! # CDS mapping
//!
//! Every accepted cluster becomes a [`ClusterPolicy`] ([`XdsClient::cluster_policy`], or the
//! [`XdsClient::policies`] watch channel to follow changes): `lb_policy` ([`LbPolicy`], with
//! [`LbPolicy::load_strategy`] for mesh-balance: LEAST_REQUEST → P2C by requests in flight,
//! ROUND_ROBIN → round robin), `outlier_detection` (consecutive 5xx / gateway failures, interval,
//! base ejection time, max ejection percent), the DEFAULT-priority `circuit_breakers.thresholds`
//! (connections, pending, requests, retries), `common_lb_config.healthy_panic_threshold` and
//! `connect_timeout`. Fields set but not supported are listed in [`ClusterPolicy::ignored`] and
//! logged once per cluster, never NACKed; impossible values (negative durations, percentages
//! above 100, a cluster without a name) are NACKed. SotW CDS is the full set (a missing cluster
//! is gone); Delta CDS names removed clusters explicitly. A removed cluster takes its endpoints
//! along (its discover streams emit a `Remove` for each, so requests in flight finish and new ones
//! fail fast with mesh-core's `NoEndpoints`), and [`XdsClient::ready`] waits for it again. Only an
//! accepted CDS answer removes anything: a control plane that is merely away removes nothing.
//!
//! # Applying a policy
//!
//! [`ClusterPolicy::balance_config`] and [`ClusterPolicy::outlier_config`] map a cluster onto
//! mesh-balance's settings. The mapping starts from the caller's own settings and overrides only what the cluster sets, so
//! a control plane that says nothing about outlier detection leaves the local defaults alone.
//! What has no counterpart in mesh-balance is left out on purpose, and named here:
//!
//! | xDS | mesh-balance |
//! |---|---|
//! | `lb_policy` LEAST_REQUEST / ROUND_ROBIN | [`BalanceConfig::load`](mesh_balance::BalanceConfig::load) ([`LbPolicy::load_strategy`](crate::LbPolicy::load_strategy)); the others keep the configured strategy |
//! | `outlier_detection.consecutive_5xx` (else `consecutive_gateway_failure`) | [`OutlierConfig::consecutive_failures`](mesh_balance::OutlierConfig::consecutive_failures) (mesh-balance counts every failed response, so the 5xx count is the closer one) |
//! | `outlier_detection.base_ejection_time` | [`OutlierConfig::base_ejection`](mesh_balance::OutlierConfig::base_ejection) |
//! | `outlier_detection.max_ejection_percent` | [`OutlierConfig::max_ejected_share`](mesh_balance::OutlierConfig::max_ejected_share) (percent / 100) |
//! | `common_lb_config.healthy_panic_threshold` | [`OutlierConfig::panic_threshold`](mesh_balance::OutlierConfig::panic_threshold) (percent / 100) |
//! | `circuit_breakers` `max_pending_requests` | [`BalanceConfig::max_waiters`](mesh_balance::BalanceConfig::max_waiters): requests waiting for a ready endpoint, the balancer's form of Envoy's pending queue |
//! | `outlier_detection.interval` | not applied: mesh-balance ejects on each response, not on a timer |
//! | `circuit_breakers` `max_connections`, `max_requests`, `max_retries` | not applied here: they bound the HTTP client and the retry layer, which the caller builds (`connect_timeout` likewise) |
//!
//! A policy applies when the stack is built; mesh-balance has no setter on a running balancer
//! yet, so a later CDS change reaches a client only when it is rebuilt.
//!
//! # Metrics
//!
//! Recorded through the OpenTelemetry API with [`XdsConfig::meter`]:
//!
//! | Name | Instrument | Unit | Attributes | Meaning |
//! |------|------------|------|------------|---------|
//! | `mesh.xds.stream.connected` | up-down counter (i64) | `{stream}` | none | 1 while the client's ADS stream is open, 0 while it is away (connecting or backing off). Clients sharing a meter add up. |
//! | `mesh.xds.streams` | counter (u64) | `{stream}` | none | ADS streams opened: more than one means the client reconnected. |
//! | `mesh.xds.updates` | counter (u64) | `{update}` | `mesh.xds.type`: `cds`, `eds`, `other`; `mesh.xds.result`: `accepted`, `rejected` | Responses from the control plane, by resource type and whether they were ACKed or NACKed. |
//! | `mesh.xds.version` | gauge (u64) | `{version}` | `mesh.xds.type`; `mesh.xds.version`: the `version_info` (Delta: `system_version_info`) | 1 for the version accepted last of each type, 0 for the one it replaced: an info-style gauge, one live series per type. |
//! | `mesh.xds.update.time` | gauge (u64) | `s` | `mesh.xds.type` | Unix time of the last accepted update of each type: time since the last update is `time() - mesh_xds_update_time_seconds`. |
//! | `mesh.xds.endpoints` | gauge (u64) | `{endpoint}` | `mesh.xds.cluster` (the EDS resource name), `mesh.xds.priority` | Usable endpoints of each subscribed cluster by xDS priority, after each accepted assignment; a priority that empties (or a removed cluster's) goes to 0. |
//!
//! Every counter series is recorded at 0 when the client is built, so a first increment shows in
//! Prometheus' `increase()`; the gauges appear with the first accepted update. Every rejected update is also logged (`tracing::warn!`, with the
//! NACK's message) and shown in [`XdsStatus`].
//!
//! # Mutual TLS to the control plane
//!
//! [`XdsConfig::tls`] takes mesh-tls's [`TlsConnector`](mesh_tls::TlsConnector) (this workload's
//! SVID and trust bundles, fixed or rotating) and the SPIFFE ID the control plane must present,
//! e.g. `spiffe://cluster.local/ns/istio-system/sa/istiod`. The server's chain must lead to the
//! bundle of its own trust domain and name exactly that ID; the URI's host is dialled, not
//! checked. ALPN offers `h2` only. A refused handshake (wrong identity, untrusted chain, our
//! certificate refused by the server) fails the stream attempt with the reason in
//! [`XdsStatus::last_stream_error`], and the client retries after its backoff. See [`XdsTls`].
//!
//! # Bounds
//!
//! | bound | default | why |
//! |---|---|---|
//! | [`max_response_bytes`](XdsConfig::max_response_bytes) | [`DEFAULT_MAX_RESPONSE_BYTES`] (16 MiB) | the gRPC decoder rejects a larger response (tonic's `max_decoding_message_size`) before it is allocated; a 10 000-endpoint assignment is well under 1 MiB |
//! | [`max_endpoints_per_cluster`](XdsConfig::max_endpoints_per_cluster) | [`DEFAULT_MAX_ENDPOINTS_PER_CLUSTER`] (20 000) | a larger assignment is NACKed; twice the largest cluster we benchmark |
//! | backoff | 1 s → 120 s, × 1.6, ±20 % | gRPC's connection-backoff defaults: a restarting control plane is not stormed by its fleet |
//!
//! # Example
//!
//! ```no_run
//! use mesh_xds::{XdsClient, XdsConfig};
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = XdsConfig::new("http://127.0.0.1:18000", "sidecar~10.0.0.1~orders")
//!     .node_cluster("orders");
//! let client = XdsClient::connect(config).await?;
//! let discover = client.discover("reviews");
//! client.ready("reviews", Duration::from_secs(5)).await?;
//! // mesh_balance::Balance::new(discover, make_endpoint, balance_config)
//! # drop(discover); Ok(()) }
//! ```
//!
//! # Still to come
//!
//! Applying a later [`ClusterPolicy`] change to a running balancer / breaker / retry stack (a
//! policy applies when the stack is built, see [Applying a policy](#applying-a-policy)), slow
//! start and SAN → expected SPIFFE ID, routing on xDS priorities and the overprovisioning
//! factor, a ready-made `tower::Service` per cluster, metrics per cluster (endpoints by priority,
//! version, time since the last update).

mod ads;
mod apply;
mod backoff;
mod cds;
mod client;
mod config;
mod delta;
mod eds;
mod error;
mod metrics;
mod sotw;
mod stream;
mod tls;

pub use self::cds::{CircuitBreakerThresholds, ClusterPolicy, LbPolicy, OutlierPolicy};
pub use self::client::{XdsClient, XdsStatus};
pub use self::config::{
    DEFAULT_MAX_ENDPOINTS_PER_CLUSTER, DEFAULT_MAX_RESPONSE_BYTES, Protocol, XdsConfig,
};
pub use self::eds::{PRIORITY_LABEL, endpoints_from_assignment};
pub use self::error::{InvalidResource, XdsError};
pub use self::tls::XdsTls;

/// The xDS type URL of clusters (CDS).
pub const CLUSTER_TYPE_URL: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// The xDS type URL of endpoint assignments (EDS).
pub const ENDPOINT_TYPE_URL: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// The `envoy-types` crate whose protobuf types this crate speaks, re-exported so versions match.
pub use envoy_types;
