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
//!     │                and its AssignmentPolicy                (XdsClient::assignment_policies)
//!     │  + the CDS cluster's expected SPIFFE ID on each endpoint (when it names exactly one)
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
//! | `LocalityLbEndpoints.priority` | [`Endpoint::priority`](mesh_core::Endpoint::priority) (0 = most preferred) |
//! | `health_status` HEALTHY, UNKNOWN, DEGRADED | kept |
//! | `health_status` UNHEALTHY, TIMEOUT (or a value this version does not know) | removed |
//! | `health_status` DRAINING | kept, marked [`draining`](mesh_core::Endpoint::is_draining): its requests in flight finish, it gets no new ones |
//! | metadata `filter_metadata["envoy.lb"]` string fields | labels (what Envoy's subset balancer reads) |
//! | the same address twice in one cluster | invalid (NACK) |
//! | `policy.overprovisioning_factor` | [`AssignmentPolicy::overprovisioning_factor`] ([`XdsClient::overprovisioning`]); absent = [`DEFAULT_OVERPROVISIONING_FACTOR`] (140), 0 is invalid; [`locality_threshold`] gives mesh-balance's threshold |
//! | `policy.drop_overloads`, `policy.endpoint_stale_after`, `policy.weighted_priority_health`, `named_endpoints` | ignored ([`AssignmentPolicy::ignored`], counted in `mesh.xds.ignored_fields`) |
//!
//! Priorities and the draining mark are inputs: a balancer that routes on priorities sends
//! traffic to priority 1 only when priority 0 cannot take it, and one that honours the mark never
//! picks a draining endpoint. The endpoints of a cluster whose CDS transport socket names exactly
//! one SPIFFE ID carry it as [`Endpoint::identity`](mesh_core::Endpoint::identity) (see
//! [`ClusterPolicy::expected_identities`]); a later CDS change of that ID is applied to the
//! endpoints at once (each is replaced, as any changed endpoint is).
//!
//! # CDS mapping
//!
//! Every accepted cluster becomes a [`ClusterPolicy`] ([`XdsClient::cluster_policy`], or the
//! [`XdsClient::policies`] watch channel to follow changes): `lb_policy` ([`LbPolicy`], with
//! [`LbPolicy::load_strategy`] for mesh-balance: LEAST_REQUEST → P2C by requests in flight,
//! ROUND_ROBIN → round robin), `outlier_detection` (consecutive 5xx / gateway failures, interval,
//! base ejection time, max ejection percent), the DEFAULT-priority `circuit_breakers.thresholds`
//! (connections, pending, requests, retries), `common_lb_config.healthy_panic_threshold` and
//! `connect_timeout`, the `slow_start_config` of `round_robin_lb_config` or
//! `least_request_lb_config` ([`SlowStartPolicy`]), `common_lb_config.zone_aware_lb_config` or
//! `locality_weighted_lb_config` ([`LocalityPolicy`]), and the exact URI SAN matchers of an
//! `envoy.transport_sockets.tls` socket (`UpstreamTlsContext`: `validation_context` or
//! `combined_validation_context.default_validation_context`, `match_typed_subject_alt_names` of
//! type URI, else the older `match_subject_alt_names`) as
//! [`ClusterPolicy::expected_identities`]. Fields set but not supported are listed in
//! [`ClusterPolicy::ignored`], counted in `mesh.xds.ignored_fields` once per cluster version and
//! logged once per cluster, never NACKed; impossible values (negative durations, percentages
//! above 100, a slow-start aggression not above 0, a cluster without a name, a TLS
//! `typed_config` that is not an `UpstreamTlsContext` or does not decode, a SAN that claims to be
//! a SPIFFE ID and is not one) are NACKed. SotW CDS is the full set (a missing cluster
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
//! | `slow_start_config` `slow_start_window`, `aggression.default_value`, `min_weight_percent` | [`BalanceConfig::slow_start`](mesh_balance::BalanceConfig::slow_start): window, aggression and floor of [`SlowStart`](mesh_balance::slow_start::SlowStart), each only when set (`cold_after` stays the caller's); `aggression.runtime_key` is ignored (Envoy runtime) |
//! | `zone_aware_lb_config` with `routing_enabled` above 0 (or unset) | [`ClusterPolicy::locality_config`]: proximity tiers around the client's locality ([`LocalityConfig::new`](mesh_balance::LocalityConfig::new)); a `routing_enabled` between 0 and 100 % counts as on (mesh-balance routes every request by locality or none), `min_cluster_size` and `fail_traffic_on_panic` are ignored |
//! | `zone_aware_lb_config.routing_enabled` 0, `locality_weighted_lb_config` | [`ClusterPolicy::locality_config`]: a single tier (no proximity preference); locality weights are ignored |
//! | EDS `policy.overprovisioning_factor` | [`LocalityConfig::threshold`](mesh_balance::LocalityConfig::threshold) = [`locality_threshold`] (100 / factor, at most 1) |
//! | transport socket SAN: exactly one SPIFFE ID | [`Endpoint::identity`](mesh_core::Endpoint::identity) of every endpoint of the cluster, applied by the client itself: mesh-tls's connector refuses a peer presenting another ID |
//! | transport socket SAN: several SPIFFE IDs | no endpoint identity; the list is [`ClusterPolicy::expected_identities`], for the caller to authorize the peer against |
//! | `outlier_detection.interval` | not applied: mesh-balance ejects on each response, not on a timer |
//! | `circuit_breakers` `max_requests` | [`BalanceConfig::max_in_flight`](mesh_balance::BalanceConfig::max_in_flight): past it, requests fail at once with `Overloaded` (503), as Envoy's overflow does |
//! | `circuit_breakers` `max_retries` | not a balancer setting: the facade (`mesh::xds`) sets it as the client's `mesh_retry::retry::RetryLimit`, a bound on retries in flight on top of the retry budget |
//! | `circuit_breakers` `max_connections` | not applied: a typed value on [`CircuitBreakerThresholds`] (mesh-core's client keeps one HTTP/2 connection, or a bounded HTTP/1.1 pool, per endpoint) |
//!
//! A policy applies when the stack is built; following [`XdsClient::policies`] and
//! [`XdsClient::assignment_policies`] is how a caller reapplies a later change.
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
//! | `mesh.xds.endpoints` | gauge (u64) | `{endpoint}` | `mesh.xds.cluster` (the EDS resource name), `mesh.xds.priority` (decimal) | Endpoints taking new requests (draining ones left out) of each subscribed cluster by xDS priority, after each accepted assignment: one series per cluster × priority; a priority that empties (or a removed cluster's) goes to 0. |
//! | `mesh.xds.ignored_fields` | counter (u64) | `{field}` | `mesh.xds.cluster` (the cluster, or the EDS resource name); `mesh.xds.field`: the field's name as in [`ClusterPolicy::ignored`] / [`AssignmentPolicy::ignored`] | A field set but not supported, counted once per version of the resource that carries it (a version is the resource's bytes: a control plane resending an unchanged cluster adds nothing; a changed one counts again). |
//!
//! Every counter series with fixed attributes is recorded at 0 when the client is built, so a
//! first increment shows in Prometheus' `increase()` (`mesh.xds.ignored_fields` names clusters,
//! so its series start at their first count); the gauges appear with the first accepted update. Every rejected update is also logged (`tracing::warn!`, with the
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
//! Live application of policy changes to a running stack lives in the facade crate
//! (`towermesh`, feature `xds`: `mesh::xds::XdsServiceExt::service` builds a whole client from a
//! cluster name and `mesh::xds::follow_policy` reconfigures its balancer at each CDS change).
//! Not yet mapped: `transport_socket_matches` (Istio's auto-mTLS form), SAN matchers other than
//! an exact URI, and the circuit-breaker threshold `max_connections` (exposed on
//! [`ClusterPolicy`], applied by no layer yet).

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
mod transport;

pub use self::apply::locality_threshold;
pub use self::cds::{
    CircuitBreakerThresholds, ClusterPolicy, LbPolicy, LocalityPolicy, OutlierPolicy,
    SlowStartPolicy,
};
pub use self::client::{XdsClient, XdsStatus};
pub use self::config::{
    DEFAULT_MAX_ENDPOINTS_PER_CLUSTER, DEFAULT_MAX_RESPONSE_BYTES, Protocol, XdsConfig,
};
pub use self::eds::{AssignmentPolicy, DEFAULT_OVERPROVISIONING_FACTOR, endpoints_from_assignment};
pub use self::error::{InvalidResource, XdsError};
pub use self::transport::XdsTls;

/// The xDS type URL of clusters (CDS).
pub const CLUSTER_TYPE_URL: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// The xDS type URL of endpoint assignments (EDS).
pub const ENDPOINT_TYPE_URL: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// The `envoy-types` crate whose protobuf types this crate speaks, re-exported so versions match.
pub use envoy_types;
