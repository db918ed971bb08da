//! CDS: a `Cluster` becomes a [`ClusterPolicy`], the settings the stack above discovery needs.
//!
//! Only what the mesh-* layers can act on is read: the load-balancing policy, slow start, zone-aware
//! routing, outlier detection, circuit-breaker thresholds, the panic threshold, the connect timeout
//! and the expected SPIFFE IDs of the TLS transport socket. A field we do not
//! support is not an error (control planes set many for Envoy's sake): it is named in
//! [`ClusterPolicy::ignored`], logged once per cluster and version, and otherwise left alone. A
//! field that is present but impossible (a negative duration, a percentage above 100, no name)
//! rejects the response, which is NACKed.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::common_lb_config::LocalityConfigSpecifier;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    CommonLbConfig, LbConfig, LbPolicy as XdsLbPolicy, SlowStartConfig,
};
use envoy_types::pb::envoy::config::core::v3::RoutingPriority;
use envoy_types::pb::google::protobuf::Duration as XdsDuration;
use mesh_balance::LoadStrategy;

use crate::InvalidResource;

/// A cluster's load-balancing policy (`Cluster.lb_policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LbPolicy {
    /// `ROUND_ROBIN`, xDS's default.
    #[default]
    RoundRobin,
    /// `LEAST_REQUEST`: power of two choices by requests in flight.
    LeastRequest,
    /// `RING_HASH`: consistent hashing on a ring.
    RingHash,
    /// `MAGLEV`: consistent hashing on a Maglev table.
    Maglev,
    /// `RANDOM`.
    Random,
    /// A policy this version does not map (`CLUSTER_PROVIDED`, `LOAD_BALANCING_POLICY_CONFIG`,
    /// or a number it does not know).
    Other(i32),
}

impl LbPolicy {
    /// The mesh-balance load strategy that implements this policy, when there is one:
    /// `LEAST_REQUEST` → [`LoadStrategy::PendingRequests`] (P2C by requests in flight, Envoy's
    /// least-request), `ROUND_ROBIN` → [`LoadStrategy::RoundRobin`]. The hashing policies need a
    /// hash key from the route, which xDS carries in RDS (not read yet), so they map to `None`,
    /// like `RANDOM` and the others: keep the balancer's configured strategy.
    pub fn load_strategy(self) -> Option<LoadStrategy> {
        match self {
            LbPolicy::LeastRequest => Some(LoadStrategy::PendingRequests),
            LbPolicy::RoundRobin => Some(LoadStrategy::RoundRobin),
            _ => None,
        }
    }

    fn from_xds(value: i32) -> Self {
        match XdsLbPolicy::try_from(value) {
            Ok(XdsLbPolicy::RoundRobin) => LbPolicy::RoundRobin,
            Ok(XdsLbPolicy::LeastRequest) => LbPolicy::LeastRequest,
            Ok(XdsLbPolicy::RingHash) => LbPolicy::RingHash,
            Ok(XdsLbPolicy::Maglev) => LbPolicy::Maglev,
            Ok(XdsLbPolicy::Random) => LbPolicy::Random,
            _ => LbPolicy::Other(value),
        }
    }
}

/// `Cluster.outlier_detection`: `None` fields were not set (Envoy's defaults then apply:
/// 5 consecutive 5xx, 10 s interval, 30 s base ejection, 10 % max ejection).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutlierPolicy {
    /// Consecutive 5xx responses that eject an endpoint.
    pub consecutive_5xx: Option<u32>,
    /// Consecutive gateway failures (502, 503, 504) that eject an endpoint.
    pub consecutive_gateway_failure: Option<u32>,
    /// How often ejection is evaluated.
    pub interval: Option<Duration>,
    /// The first ejection's length (multiplied by the times ejected).
    pub base_ejection_time: Option<Duration>,
    /// The largest share of the cluster that may be ejected, in percent (0–100).
    pub max_ejection_percent: Option<u32>,
}

/// The `DEFAULT`-priority entry of `Cluster.circuit_breakers.thresholds` (Envoy's "circuit
/// breakers" are resource limits; unset fields keep Envoy's defaults: 1024 connections, pending
/// and requests, 3 retries).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CircuitBreakerThresholds {
    /// Most connections to the cluster. Not applied by this crate: it bounds the caller's HTTP
    /// client pool.
    pub max_connections: Option<u32>,
    /// Most requests waiting for a connection; applied by
    /// [`ClusterPolicy::balance_config`] as mesh-balance's
    /// [`max_waiters`](mesh_balance::BalanceConfig::max_waiters).
    pub max_pending_requests: Option<u32>,
    /// Most requests in flight to the cluster. Not applied by this crate: the facade that builds
    /// the client stack applies it as a concurrency limit (mesh-retry's) in front of the
    /// balancer, so a request over the limit fails fast instead of queueing.
    pub max_requests: Option<u32>,
    /// Most retries in flight to the cluster. Not applied by this crate: the facade applies it
    /// to the retry layer (mesh-retry), whose retries past the limit are not attempted.
    pub max_retries: Option<u32>,
}

/// `slow_start_config` of the cluster's `round_robin_lb_config` or `least_request_lb_config`:
/// how a new endpoint's weight ramps up. `None` fields were not set (Envoy's defaults then
/// apply: no window, so no slow start; aggression 1.0; floor 10 %).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SlowStartPolicy {
    /// `slow_start_window`: how long the ramp lasts.
    pub window: Option<Duration>,
    /// `aggression.default_value`: the ramp's shape (exponent `1 / aggression`), above zero.
    pub aggression: Option<f64>,
    /// `min_weight_percent`: the weight floor during the ramp, in percent (0–100).
    pub min_weight_percent: Option<f64>,
}

/// `common_lb_config.locality_config_specifier`: how the cluster wants localities weighed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LocalityPolicy {
    /// `zone_aware_lb_config`: prefer endpoints close to this client.
    ZoneAware {
        /// `routing_enabled`, in percent (Envoy's default 100 when unset): the share of requests
        /// routed zone-aware. mesh-balance routes every request or none, so 0 turns proximity
        /// tiers off and any other value turns them on.
        routing_enabled: Option<f64>,
        /// `min_cluster_size` (Envoy's default 6): below this many endpoints Envoy routes without
        /// zones. Exposed only: mesh-balance has no such bound.
        min_cluster_size: Option<u64>,
    },
    /// `locality_weighted_lb_config`: spread across localities by their EDS weights. mesh-balance
    /// has no locality weights, so this only turns proximity tiers off.
    LocalityWeighted,
}

impl LocalityPolicy {
    /// Whether the cluster asks for proximity tiers (zone-aware routing on for some requests).
    pub fn prefers_proximity(&self) -> bool {
        match self {
            LocalityPolicy::ZoneAware {
                routing_enabled, ..
            } => routing_enabled.is_none_or(|p| p > 0.0),
            LocalityPolicy::LocalityWeighted => false,
        }
    }
}

/// What a cluster from CDS asks of the stack; see the [crate docs](crate#cds-mapping).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ClusterPolicy {
    /// The cluster's name.
    pub name: String,
    /// The name of its endpoint assignment (EDS resource), which is what
    /// [`XdsClient::discover`](crate::XdsClient::discover) takes: `eds_cluster_config.service_name`
    /// when set, else the cluster's name.
    pub eds_service_name: String,
    /// The load-balancing policy.
    pub lb_policy: LbPolicy,
    /// The connect timeout, when set.
    pub connect_timeout: Option<Duration>,
    /// Outlier detection, when the cluster has it.
    pub outlier_detection: Option<OutlierPolicy>,
    /// The default-priority circuit-breaker thresholds.
    pub circuit_breakers: CircuitBreakerThresholds,
    /// `common_lb_config.healthy_panic_threshold`, in percent (0–100), when set.
    pub healthy_panic_threshold: Option<f64>,
    /// Slow start, when the cluster's round-robin or least-request config has it.
    pub slow_start: Option<SlowStartPolicy>,
    /// Zone-aware or locality-weighted routing, when `common_lb_config` names one.
    pub locality: Option<LocalityPolicy>,
    /// The SPIFFE IDs the cluster's endpoints may present, from the exact URI SAN matchers of its
    /// TLS transport socket (`spiffe://<trust domain>/ns/<namespace>/sa/<account>` in Istio),
    /// in the control plane's order. Empty when the cluster names none.
    ///
    /// With exactly one ([`expected_identity`](Self::expected_identity)), every endpoint of the
    /// cluster carries it as [`Endpoint::identity`](mesh_core::Endpoint::identity) and mesh-tls
    /// refuses a peer presenting another. With several (a service run by more than one account),
    /// an endpoint cannot carry them all: endpoints carry none, mesh-tls accepts any peer its
    /// trust bundles verify (or refuses every connection when its connector requires an endpoint
    /// identity), and checking the peer against this list is the facade's job.
    pub expected_identities: Vec<String>,
    /// The fields that were set but are not supported, by their xDS name.
    pub ignored: Vec<&'static str>,
}

impl ClusterPolicy {
    /// The policy of `cluster`, or why the cluster is invalid.
    pub fn from_cluster(cluster: &Cluster) -> Result<Self, InvalidResource> {
        let name = cluster.name.clone();
        let invalid = |reason: String| InvalidResource::Cluster {
            cluster: name.clone(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("has no name".to_owned()));
        }
        let duration = |field: &str, d: Option<&XdsDuration>| {
            d.map(|d| {
                to_duration(d)
                    .ok_or_else(|| invalid(format!("{field} is negative or out of range")))
            })
            .transpose()
        };
        let percent = |field: &str, value: Option<u32>| match value {
            Some(p) if p > 100 => Err(invalid(format!("{field} is {p} %, above 100"))),
            other => Ok(other),
        };

        let outlier_detection = match &cluster.outlier_detection {
            None => None,
            Some(o) => Some(OutlierPolicy {
                consecutive_5xx: o.consecutive_5xx.map(|v| v.value),
                consecutive_gateway_failure: o.consecutive_gateway_failure.map(|v| v.value),
                interval: duration("outlier_detection.interval", o.interval.as_ref())?,
                base_ejection_time: duration(
                    "outlier_detection.base_ejection_time",
                    o.base_ejection_time.as_ref(),
                )?,
                max_ejection_percent: percent(
                    "outlier_detection.max_ejection_percent",
                    o.max_ejection_percent.map(|v| v.value),
                )?,
            }),
        };

        let mut ignored = Vec::new();
        let mut circuit_breakers = CircuitBreakerThresholds::default();
        for t in cluster
            .circuit_breakers
            .iter()
            .flat_map(|cb| &cb.thresholds)
        {
            if t.priority == RoutingPriority::Default as i32 {
                circuit_breakers = CircuitBreakerThresholds {
                    max_connections: t.max_connections.map(|v| v.value),
                    max_pending_requests: t.max_pending_requests.map(|v| v.value),
                    max_requests: t.max_requests.map(|v| v.value),
                    max_retries: t.max_retries.map(|v| v.value),
                };
            } else {
                ignored.push("circuit_breakers.thresholds (HIGH priority)");
            }
        }

        let healthy_panic_threshold = match cluster
            .common_lb_config
            .as_ref()
            .and_then(|c| c.healthy_panic_threshold.as_ref())
        {
            Some(p) if !(0.0..=100.0).contains(&p.value) => {
                return Err(invalid(format!(
                    "common_lb_config.healthy_panic_threshold is {} %, outside 0–100",
                    p.value
                )));
            }
            other => other.map(|p| p.value),
        };

        let slow_start = slow_start(cluster, &mut ignored).map_err(&invalid)?;
        let locality = match &cluster.common_lb_config {
            Some(common) => locality(common, &mut ignored).map_err(&invalid)?,
            None => None,
        };
        let expected_identities = match &cluster.transport_socket {
            Some(socket) => {
                crate::tls::expected_identities(socket, &mut ignored).map_err(&invalid)?
            }
            None => Vec::new(),
        };

        let unsupported: [(&'static str, bool); 5] = [
            ("health_checks", !cluster.health_checks.is_empty()),
            ("lb_subset_config", cluster.lb_subset_config.is_some()),
            (
                "load_balancing_policy",
                cluster.load_balancing_policy.is_some(),
            ),
            (
                "transport_socket_matches",
                !cluster.transport_socket_matches.is_empty(),
            ),
            (
                "per_connection_buffer_limit_bytes",
                cluster.per_connection_buffer_limit_bytes.is_some(),
            ),
        ];
        ignored.extend(
            unsupported
                .iter()
                .filter(|(_, set)| *set)
                .map(|(field, _)| *field),
        );
        // One entry per field, in the order first met.
        let mut seen = Vec::with_capacity(ignored.len());
        ignored.retain(|field| {
            let first = !seen.contains(field);
            seen.push(*field);
            first
        });

        let eds_service_name = match cluster.eds_cluster_config.as_ref() {
            Some(eds) if !eds.service_name.is_empty() => eds.service_name.clone(),
            _ => name.clone(),
        };
        Ok(Self {
            eds_service_name,
            lb_policy: LbPolicy::from_xds(cluster.lb_policy),
            connect_timeout: duration("connect_timeout", cluster.connect_timeout.as_ref())?,
            outlier_detection,
            circuit_breakers,
            healthy_panic_threshold,
            slow_start,
            locality,
            expected_identities,
            ignored,
            name,
        })
    }

    /// The one SPIFFE ID every endpoint of the cluster must present, when the cluster names
    /// exactly one (see [`expected_identities`](Self::expected_identities) for several).
    pub fn expected_identity(&self) -> Option<&str> {
        match self.expected_identities.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

/// The slow start of the cluster's `lb_config`; the other load-balancer configs and their other
/// fields are pushed onto `ignored`.
fn slow_start(
    cluster: &Cluster,
    ignored: &mut Vec<&'static str>,
) -> Result<Option<SlowStartPolicy>, String> {
    let config = match &cluster.lb_config {
        None => return Ok(None),
        Some(LbConfig::RoundRobinLbConfig(rr)) => rr.slow_start_config.as_ref(),
        Some(LbConfig::LeastRequestLbConfig(lr)) => {
            if lr.choice_count.is_some() {
                ignored.push("least_request_lb_config.choice_count");
            }
            if lr.active_request_bias.is_some() {
                ignored.push("least_request_lb_config.active_request_bias");
            }
            lr.slow_start_config.as_ref()
        }
        Some(LbConfig::RingHashLbConfig(_)) => {
            ignored.push("ring_hash_lb_config");
            None
        }
        Some(LbConfig::MaglevLbConfig(_)) => {
            ignored.push("maglev_lb_config");
            None
        }
        Some(LbConfig::OriginalDstLbConfig(_)) => {
            ignored.push("original_dst_lb_config");
            None
        }
    };
    config
        .map(|config| slow_start_policy(config, ignored))
        .transpose()
}

fn slow_start_policy(
    config: &SlowStartConfig,
    ignored: &mut Vec<&'static str>,
) -> Result<SlowStartPolicy, String> {
    let window = config
        .slow_start_window
        .as_ref()
        .map(|d| {
            to_duration(d).ok_or_else(|| "slow_start_window is negative or out of range".to_owned())
        })
        .transpose()?;
    let aggression = match &config.aggression {
        None => None,
        Some(a) => {
            if !a.runtime_key.is_empty() {
                ignored.push("slow_start_config.aggression.runtime_key");
            }
            if !(a.default_value.is_finite() && a.default_value > 0.0) {
                return Err(format!(
                    "slow_start_config.aggression is {}, it must be a finite number above 0",
                    a.default_value
                ));
            }
            Some(a.default_value)
        }
    };
    let min_weight_percent = match &config.min_weight_percent {
        Some(p) if !(0.0..=100.0).contains(&p.value) => {
            return Err(format!(
                "slow_start_config.min_weight_percent is {} %, outside 0–100",
                p.value
            ));
        }
        other => other.map(|p| p.value),
    };
    Ok(SlowStartPolicy {
        window,
        aggression,
        min_weight_percent,
    })
}

/// The locality policy of `common_lb_config`; its fields without a counterpart are pushed onto
/// `ignored`.
fn locality(
    common: &CommonLbConfig,
    ignored: &mut Vec<&'static str>,
) -> Result<Option<LocalityPolicy>, String> {
    let unsupported = [
        (
            "common_lb_config.update_merge_window",
            common.update_merge_window.is_some(),
        ),
        (
            "common_lb_config.ignore_new_hosts_until_first_hc",
            common.ignore_new_hosts_until_first_hc,
        ),
        (
            "common_lb_config.close_connections_on_host_set_change",
            common.close_connections_on_host_set_change,
        ),
        (
            "common_lb_config.consistent_hashing_lb_config",
            common.consistent_hashing_lb_config.is_some(),
        ),
        (
            "common_lb_config.override_host_status",
            common.override_host_status.is_some(),
        ),
    ];
    ignored.extend(
        unsupported
            .iter()
            .filter(|(_, set)| *set)
            .map(|(field, _)| *field),
    );
    Ok(match &common.locality_config_specifier {
        None => None,
        Some(LocalityConfigSpecifier::ZoneAwareLbConfig(zone)) => {
            let routing_enabled = match &zone.routing_enabled {
                Some(p) if !(0.0..=100.0).contains(&p.value) => {
                    return Err(format!(
                        "zone_aware_lb_config.routing_enabled is {} %, outside 0–100",
                        p.value
                    ));
                }
                Some(p) if p.value > 0.0 && p.value < 100.0 => {
                    ignored.push("zone_aware_lb_config.routing_enabled (between 0 and 100 %)");
                    Some(p.value)
                }
                other => other.map(|p| p.value),
            };
            let min_cluster_size = zone.min_cluster_size.map(|v| v.value);
            if min_cluster_size.is_some() {
                ignored.push("zone_aware_lb_config.min_cluster_size");
            }
            if zone.fail_traffic_on_panic {
                ignored.push("zone_aware_lb_config.fail_traffic_on_panic");
            }
            Some(LocalityPolicy::ZoneAware {
                routing_enabled,
                min_cluster_size,
            })
        }
        Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_)) => {
            ignored.push("locality_weighted_lb_config (locality weights)");
            Some(LocalityPolicy::LocalityWeighted)
        }
    })
}

/// A protobuf duration as a std one; `None` when negative or out of range.
fn to_duration(d: &XdsDuration) -> Option<Duration> {
    let seconds = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::common_lb_config::ZoneAwareLbConfig;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        LeastRequestLbConfig, RoundRobinLbConfig,
    };
    use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, OutlierDetection};
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    use envoy_types::pb::envoy::config::core::v3::{RuntimeDouble, TransportSocket};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
        CombinedCertificateValidationContext, ValidationContextType,
    };
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, UpstreamTlsContext,
    };
    use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
    use envoy_types::pb::envoy::r#type::v3::Percent;
    use envoy_types::pb::google::protobuf::{UInt32Value, UInt64Value};

    use super::*;

    fn u32v(value: u32) -> Option<UInt32Value> {
        Some(UInt32Value { value })
    }

    fn cluster() -> Cluster {
        Cluster {
            name: "orders".into(),
            lb_policy: XdsLbPolicy::LeastRequest as i32,
            connect_timeout: Some(XdsDuration {
                seconds: 2,
                nanos: 500_000_000,
            }),
            outlier_detection: Some(OutlierDetection {
                consecutive_5xx: u32v(7),
                interval: Some(XdsDuration {
                    seconds: 10,
                    nanos: 0,
                }),
                max_ejection_percent: u32v(30),
                ..Default::default()
            }),
            circuit_breakers: Some(CircuitBreakers {
                thresholds: vec![
                    Thresholds {
                        max_requests: u32v(100),
                        max_retries: u32v(5),
                        ..Default::default()
                    },
                    Thresholds {
                        priority: RoutingPriority::High as i32,
                        max_requests: u32v(1),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            common_lb_config: Some(CommonLbConfig {
                healthy_panic_threshold: Some(Percent { value: 40.0 }),
                ..Default::default()
            }),
            lb_subset_config: Some(Default::default()),
            ..Default::default()
        }
    }

    #[test]
    fn maps_policy_outlier_breakers_and_panic_threshold() {
        let policy = ClusterPolicy::from_cluster(&cluster()).unwrap();
        assert_eq!(policy.name, "orders");
        assert_eq!(policy.eds_service_name, "orders");
        assert_eq!(policy.lb_policy, LbPolicy::LeastRequest);
        assert_eq!(
            policy.lb_policy.load_strategy(),
            Some(LoadStrategy::PendingRequests)
        );
        assert_eq!(policy.connect_timeout, Some(Duration::from_millis(2500)));
        let outlier = policy.outlier_detection.unwrap();
        assert_eq!(outlier.consecutive_5xx, Some(7));
        assert_eq!(outlier.interval, Some(Duration::from_secs(10)));
        assert_eq!(outlier.max_ejection_percent, Some(30));
        assert_eq!(outlier.base_ejection_time, None);
        assert_eq!(policy.circuit_breakers.max_requests, Some(100));
        assert_eq!(policy.circuit_breakers.max_retries, Some(5));
        assert_eq!(policy.healthy_panic_threshold, Some(40.0));
        assert_eq!(
            policy.ignored,
            [
                "circuit_breakers.thresholds (HIGH priority)",
                "lb_subset_config"
            ]
        );
    }

    #[test]
    fn impossible_values_are_invalid() {
        let reason = |c: Cluster| ClusterPolicy::from_cluster(&c).unwrap_err().to_string();
        let mut c = cluster();
        c.connect_timeout = Some(XdsDuration {
            seconds: -1,
            nanos: 0,
        });
        assert_eq!(
            reason(c),
            r#"cluster "orders": connect_timeout is negative or out of range"#
        );
        let mut c = cluster();
        c.outlier_detection.as_mut().unwrap().max_ejection_percent = u32v(101);
        assert!(reason(c).contains("max_ejection_percent is 101 %"));
        let mut c = cluster();
        c.common_lb_config = Some(CommonLbConfig {
            healthy_panic_threshold: Some(Percent { value: 120.0 }),
            ..Default::default()
        });
        assert!(reason(c).contains("healthy_panic_threshold"));
        assert!(reason(Cluster::default()).contains("has no name"));
    }

    fn tls_socket(validation: CertificateValidationContext) -> TransportSocket {
        let context = UpstreamTlsContext {
            common_tls_context: Some(CommonTlsContext {
                validation_context_type: Some(ValidationContextType::CombinedValidationContext(
                    CombinedCertificateValidationContext {
                        default_validation_context: Some(validation),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }),
            ..Default::default()
        };
        TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(ConfigType::TypedConfig(envoy_types::util::pack_any(
                context,
            ))),
        }
    }

    fn exact(value: &str) -> StringMatcher {
        StringMatcher {
            match_pattern: Some(MatchPattern::Exact(value.into())),
            ..Default::default()
        }
    }

    fn san(san_type: SanType, value: &str) -> SubjectAltNameMatcher {
        SubjectAltNameMatcher {
            san_type: san_type as i32,
            matcher: Some(exact(value)),
            ..Default::default()
        }
    }

    const REVIEWS: &str = "spiffe://cluster.local/ns/shop/sa/reviews";
    const RATINGS: &str = "spiffe://cluster.local/ns/shop/sa/ratings";

    #[test]
    fn maps_slow_start_of_least_request_and_round_robin() {
        let ramp = SlowStartConfig {
            slow_start_window: Some(XdsDuration {
                seconds: 30,
                nanos: 0,
            }),
            aggression: Some(RuntimeDouble {
                default_value: 2.0,
                runtime_key: "upstream.aggression".into(),
            }),
            min_weight_percent: Some(Percent { value: 20.0 }),
        };
        let mut c = cluster();
        c.lb_config = Some(LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
            choice_count: u32v(3),
            slow_start_config: Some(ramp.clone()),
            ..Default::default()
        }));
        let policy = ClusterPolicy::from_cluster(&c).unwrap();
        let expected = SlowStartPolicy {
            window: Some(Duration::from_secs(30)),
            aggression: Some(2.0),
            min_weight_percent: Some(20.0),
        };
        assert_eq!(policy.slow_start.as_ref(), Some(&expected));
        assert!(
            policy
                .ignored
                .contains(&"least_request_lb_config.choice_count")
        );
        assert!(
            policy
                .ignored
                .contains(&"slow_start_config.aggression.runtime_key")
        );

        c.lb_config = Some(LbConfig::RoundRobinLbConfig(RoundRobinLbConfig {
            slow_start_config: Some(SlowStartConfig {
                aggression: None,
                ..ramp
            }),
        }));
        let policy = ClusterPolicy::from_cluster(&c).unwrap();
        assert_eq!(policy.slow_start.unwrap().aggression, None);
        c.lb_config = Some(LbConfig::RingHashLbConfig(Default::default()));
        let policy = ClusterPolicy::from_cluster(&c).unwrap();
        assert_eq!(policy.slow_start, None);
        assert!(policy.ignored.contains(&"ring_hash_lb_config"));
    }

    #[test]
    fn impossible_slow_start_values_are_invalid() {
        let reason = |ramp: SlowStartConfig| {
            let mut c = cluster();
            c.lb_config = Some(LbConfig::RoundRobinLbConfig(RoundRobinLbConfig {
                slow_start_config: Some(ramp),
            }));
            ClusterPolicy::from_cluster(&c).unwrap_err().to_string()
        };
        let negative = reason(SlowStartConfig {
            slow_start_window: Some(XdsDuration {
                seconds: -5,
                nanos: 0,
            }),
            ..Default::default()
        });
        assert!(
            negative.contains("slow_start_window is negative"),
            "{negative}"
        );
        for bad in [0.0, -1.0, f64::NAN] {
            let message = reason(SlowStartConfig {
                aggression: Some(RuntimeDouble {
                    default_value: bad,
                    ..Default::default()
                }),
                ..Default::default()
            });
            assert!(message.contains("aggression"), "{message}");
        }
        let floor = reason(SlowStartConfig {
            min_weight_percent: Some(Percent { value: 150.0 }),
            ..Default::default()
        });
        assert!(floor.contains("min_weight_percent is 150 %"), "{floor}");
    }

    #[test]
    fn maps_zone_aware_and_locality_weighted_routing() {
        let with = |specifier: LocalityConfigSpecifier| {
            let mut c = Cluster {
                name: "orders".into(),
                ..Default::default()
            };
            c.common_lb_config = Some(CommonLbConfig {
                locality_config_specifier: Some(specifier),
                ..Default::default()
            });
            ClusterPolicy::from_cluster(&c)
        };
        let zone = |routing: Option<f64>, min: Option<u64>| {
            LocalityConfigSpecifier::ZoneAwareLbConfig(ZoneAwareLbConfig {
                routing_enabled: routing.map(|value| Percent { value }),
                min_cluster_size: min.map(|value| UInt64Value { value }),
                ..Default::default()
            })
        };
        let on = with(zone(None, None)).unwrap();
        assert_eq!(
            on.locality,
            Some(LocalityPolicy::ZoneAware {
                routing_enabled: None,
                min_cluster_size: None
            })
        );
        assert!(on.locality.unwrap().prefers_proximity());
        assert!(on.ignored.is_empty(), "{:?}", on.ignored);

        let off = with(zone(Some(0.0), Some(10))).unwrap();
        assert!(!off.locality.unwrap().prefers_proximity());
        assert_eq!(off.ignored, ["zone_aware_lb_config.min_cluster_size"]);

        let partial = with(zone(Some(50.0), None)).unwrap();
        assert!(partial.locality.unwrap().prefers_proximity());
        assert_eq!(
            partial.ignored,
            ["zone_aware_lb_config.routing_enabled (between 0 and 100 %)"]
        );

        let weighted = with(LocalityConfigSpecifier::LocalityWeightedLbConfig(
            Default::default(),
        ))
        .unwrap();
        assert_eq!(weighted.locality, Some(LocalityPolicy::LocalityWeighted));
        assert_eq!(
            weighted.ignored,
            ["locality_weighted_lb_config (locality weights)"]
        );

        let bad = with(zone(Some(101.0), None)).unwrap_err().to_string();
        assert!(bad.contains("routing_enabled is 101 %"), "{bad}");
    }

    #[test]
    fn typed_uri_san_matchers_become_expected_identities() {
        let mut c = cluster();
        c.transport_socket = Some(tls_socket(CertificateValidationContext {
            match_typed_subject_alt_names: vec![
                san(SanType::Uri, REVIEWS),
                san(SanType::Dns, "reviews.shop.svc"),
                san(SanType::Uri, REVIEWS),
            ],
            ..Default::default()
        }));
        let policy = ClusterPolicy::from_cluster(&c).unwrap();
        assert_eq!(policy.expected_identities, [REVIEWS]);
        assert_eq!(policy.expected_identity(), Some(REVIEWS));
        assert!(
            policy
                .ignored
                .contains(&"match_typed_subject_alt_names (a SAN type other than URI)")
        );
        assert!(
            !policy
                .ignored
                .iter()
                .any(|f| f.starts_with("transport_socket"))
        );
    }

    #[test]
    #[allow(deprecated)]
    fn older_san_matchers_are_read_and_several_ids_are_kept_as_a_list() {
        let mut c = cluster();
        let prefix = StringMatcher {
            match_pattern: Some(MatchPattern::Prefix("spiffe://cluster.local/".into())),
            ..Default::default()
        };
        c.transport_socket = Some(tls_socket(CertificateValidationContext {
            match_subject_alt_names: vec![
                exact(REVIEWS),
                exact(RATINGS),
                exact("reviews.shop.svc"),
                prefix,
            ],
            ..Default::default()
        }));
        let policy = ClusterPolicy::from_cluster(&c).unwrap();
        assert_eq!(policy.expected_identities, [REVIEWS, RATINGS]);
        assert_eq!(policy.expected_identity(), None);
        assert!(
            policy
                .ignored
                .contains(&"subject alt name (not a SPIFFE ID)")
        );
        assert!(
            policy
                .ignored
                .contains(&"subject alt name matcher (not an exact, case-sensitive match)")
        );
    }

    #[test]
    fn a_malformed_tls_context_is_invalid() {
        let reason = |socket: TransportSocket| {
            let mut c = cluster();
            c.transport_socket = Some(socket);
            ClusterPolicy::from_cluster(&c).unwrap_err().to_string()
        };
        let mut garbage = tls_socket(Default::default());
        if let Some(ConfigType::TypedConfig(any)) = &mut garbage.config_type {
            any.value = vec![0xff, 0xff, 0xff];
        }
        let message = reason(garbage);
        assert!(
            message.starts_with(r#"cluster "orders": transport_socket.typed_config does not decode as UpstreamTlsContext"#),
            "{message}"
        );
        let mut mistyped = tls_socket(Default::default());
        if let Some(ConfigType::TypedConfig(any)) = &mut mistyped.config_type {
            any.type_url = "type.googleapis.com/google.protobuf.Empty".into();
        }
        assert!(
            reason(mistyped).contains("typed_config is type.googleapis.com/google.protobuf.Empty")
        );
        let untyped = TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: None,
        };
        assert!(reason(untyped).contains("has no typed_config"));
        let bad_id = reason(tls_socket(CertificateValidationContext {
            match_typed_subject_alt_names: vec![san(SanType::Uri, "spiffe:///ns/x")],
            ..Default::default()
        }));
        assert!(
            bad_id.contains(r#"subject alt name "spiffe:///ns/x""#),
            "{bad_id}"
        );

        let mut c = cluster();
        c.transport_socket = Some(TransportSocket {
            name: "envoy.transport_sockets.raw_buffer".into(),
            config_type: None,
        });
        let policy = ClusterPolicy::from_cluster(&c).unwrap();
        assert!(policy.expected_identities.is_empty());
        assert!(
            policy
                .ignored
                .contains(&"transport_socket (not envoy.transport_sockets.tls)")
        );
    }

    #[test]
    fn unknown_policies_are_kept_as_numbers() {
        let mut c = cluster();
        c.lb_policy = 42;
        let policy = ClusterPolicy::from_cluster(&c).unwrap();
        assert_eq!(policy.lb_policy, LbPolicy::Other(42));
        assert_eq!(policy.lb_policy.load_strategy(), None);
    }
}
