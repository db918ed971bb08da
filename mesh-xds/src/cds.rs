//! CDS: a `Cluster` becomes a [`ClusterPolicy`], the settings the stack above discovery needs.
//!
//! Only what the mesh-* layers can act on is read: the load-balancing policy, outlier detection,
//! circuit-breaker thresholds, the panic threshold and the connect timeout. A field we do not
//! support is not an error (control planes set many for Envoy's sake): it is named in
//! [`ClusterPolicy::ignored`], logged once per cluster and version, and otherwise left alone. A
//! field that is present but impossible (a negative duration, a percentage above 100, no name)
//! rejects the response, which is NACKed.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::LbPolicy as XdsLbPolicy;
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
    /// Most connections to the cluster.
    pub max_connections: Option<u32>,
    /// Most requests waiting for a connection.
    pub max_pending_requests: Option<u32>,
    /// Most requests in flight.
    pub max_requests: Option<u32>,
    /// Most retries in flight.
    pub max_retries: Option<u32>,
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

        let unsupported: [(&'static str, bool); 5] = [
            ("health_checks", !cluster.health_checks.is_empty()),
            ("lb_subset_config", cluster.lb_subset_config.is_some()),
            (
                "load_balancing_policy",
                cluster.load_balancing_policy.is_some(),
            ),
            ("transport_socket", cluster.transport_socket.is_some()),
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
            ignored,
            name,
        })
    }
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
    use envoy_types::pb::envoy::config::cluster::v3::cluster::CommonLbConfig;
    use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, OutlierDetection};
    use envoy_types::pb::envoy::r#type::v3::Percent;
    use envoy_types::pb::google::protobuf::UInt32Value;

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

    #[test]
    fn unknown_policies_are_kept_as_numbers() {
        let mut c = cluster();
        c.lb_policy = 42;
        let policy = ClusterPolicy::from_cluster(&c).unwrap();
        assert_eq!(policy.lb_policy, LbPolicy::Other(42));
        assert_eq!(policy.lb_policy.load_strategy(), None);
    }
}
