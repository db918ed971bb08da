//! EDS: a `ClusterLoadAssignment` becomes the set of [`Endpoint`]s of one cluster, plus the
//! cluster-wide settings of its `policy` ([`AssignmentPolicy`]).
//!
//! Validation is all-or-nothing: the first unusable endpoint rejects the whole assignment (and the
//! caller NACKs the response), so a half-applied update never reaches the balancer. The mapping
//! and its gaps are tabulated in the [crate docs](crate#eds-mapping).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Metadata};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LbEndpoint};
use envoy_types::pb::google::protobuf::value::Kind;
use mesh_core::{Endpoint, Locality};

use crate::InvalidResource;

/// Envoy's default `overprovisioning_factor`, in percent: a priority or locality counts as fully
/// available down to 100 / 1.4 ≈ 71 % healthy endpoints.
pub const DEFAULT_OVERPROVISIONING_FACTOR: u32 = 140;

/// The metadata namespace whose string fields become endpoint labels (Envoy's subset balancer
/// reads the same one).
const LABEL_NAMESPACE: &str = "envoy.lb";

/// The usable endpoints of `assignment`, or why it is invalid.
///
/// Endpoints whose health is UNHEALTHY or TIMEOUT are left out; DRAINING ones are kept, marked
/// [`draining`](mesh_core::Endpoint::is_draining), so a balancer lets their requests finish but
/// sends them no new ones. At most `max_endpoints` endpoints (counting left-out ones) are
/// accepted.
///
/// ```
/// use mesh_xds::envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
///
/// let empty = ClusterLoadAssignment { cluster_name: "orders".into(), ..Default::default() };
/// assert!(mesh_xds::endpoints_from_assignment(&empty, 10).unwrap().is_empty());
/// ```
pub fn endpoints_from_assignment(
    assignment: &ClusterLoadAssignment,
    max_endpoints: usize,
) -> Result<Vec<Endpoint>, InvalidResource> {
    let cluster = &assignment.cluster_name;
    let count: usize = assignment
        .endpoints
        .iter()
        .map(|group| group.lb_endpoints.len())
        .sum();
    if count > max_endpoints {
        return Err(InvalidResource::TooManyEndpoints {
            cluster: cluster.clone(),
            count,
            limit: max_endpoints,
        });
    }
    let mut seen = BTreeSet::new();
    let mut endpoints = Vec::with_capacity(count);
    for group in &assignment.endpoints {
        let locality = group
            .locality
            .as_ref()
            .map(|l| Locality::new(&l.region, &l.zone, &l.sub_zone))
            .unwrap_or_default();
        for (index, lb) in group.lb_endpoints.iter().enumerate() {
            let invalid = |endpoint: String, reason: &str| InvalidResource::Endpoint {
                cluster: cluster.clone(),
                endpoint,
                reason: reason.to_owned(),
            };
            let addr = socket_addr(lb).map_err(|(name, reason)| {
                invalid(name.unwrap_or_else(|| format!("#{index}")), reason)
            })?;
            if !seen.insert(addr) {
                return Err(invalid(addr.to_string(), "listed twice"));
            }
            let draining = match health(lb.health_status) {
                Health::Usable => false,
                Health::Draining => true,
                Health::Unusable => continue,
            };
            let weight = lb.load_balancing_weight.map_or(1, |w| w.value);
            let mut builder = Endpoint::builder(addr)
                .weight(weight)
                .locality(locality.clone())
                .priority(group.priority)
                .draining(draining);
            for (name, value) in labels(lb.metadata.as_ref()) {
                builder = builder.label(name, value);
            }
            let endpoint = builder
                .build()
                .map_err(|e| invalid(addr.to_string(), &e.to_string()))?;
            endpoints.push(endpoint);
        }
    }
    Ok(endpoints)
}

/// What an endpoint's health status means for the balancer.
enum Health {
    /// HEALTHY, UNKNOWN, DEGRADED: takes traffic.
    Usable,
    /// DRAINING: kept for the requests already on it, picked for no new one.
    Draining,
    /// UNHEALTHY, TIMEOUT, or a value this version does not know: left out.
    Unusable,
}

fn health(status: i32) -> Health {
    match HealthStatus::try_from(status) {
        Ok(HealthStatus::Healthy | HealthStatus::Unknown | HealthStatus::Degraded) => {
            Health::Usable
        }
        Ok(HealthStatus::Draining) => Health::Draining,
        _ => Health::Unusable,
    }
}

/// The cluster-wide settings of an assignment's `policy`; see the
/// [crate docs](crate#eds-mapping).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AssignmentPolicy {
    /// `policy.overprovisioning_factor`, in percent ([`DEFAULT_OVERPROVISIONING_FACTOR`], 140,
    /// when unset): a priority counts as fully available while its healthy share × this factor
    /// is at least 100 %. [`locality_threshold`](crate::locality_threshold) turns it into
    /// mesh-balance's [`LocalityConfig::threshold`](mesh_balance::LocalityConfig::threshold).
    pub overprovisioning_factor: u32,
    /// The fields that were set but are not supported, by their xDS name.
    pub ignored: Vec<&'static str>,
}

impl Default for AssignmentPolicy {
    fn default() -> Self {
        Self {
            overprovisioning_factor: DEFAULT_OVERPROVISIONING_FACTOR,
            ignored: Vec::new(),
        }
    }
}

impl AssignmentPolicy {
    /// The policy of `assignment`, or why it is invalid (an `overprovisioning_factor` of 0, which
    /// Envoy's own validation refuses too).
    ///
    /// ```
    /// use mesh_xds::envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    /// use mesh_xds::AssignmentPolicy;
    ///
    /// let cla = ClusterLoadAssignment { cluster_name: "orders".into(), ..Default::default() };
    /// let policy = AssignmentPolicy::from_assignment(&cla).unwrap();
    /// assert_eq!(policy.overprovisioning_factor, 140);
    /// ```
    pub fn from_assignment(assignment: &ClusterLoadAssignment) -> Result<Self, InvalidResource> {
        let Some(policy) = &assignment.policy else {
            return Ok(Self::default());
        };
        let overprovisioning_factor = match policy.overprovisioning_factor {
            None => DEFAULT_OVERPROVISIONING_FACTOR,
            Some(f) if f.value == 0 => {
                return Err(InvalidResource::Cluster {
                    cluster: assignment.cluster_name.clone(),
                    reason: "policy.overprovisioning_factor is 0 (it must be above 0)".to_owned(),
                });
            }
            Some(f) => f.value,
        };
        let unsupported = [
            ("policy.drop_overloads", !policy.drop_overloads.is_empty()),
            (
                "policy.endpoint_stale_after",
                policy.endpoint_stale_after.is_some(),
            ),
            (
                "policy.weighted_priority_health",
                policy.weighted_priority_health,
            ),
            ("named_endpoints", !assignment.named_endpoints.is_empty()),
        ];
        Ok(Self {
            overprovisioning_factor,
            ignored: unsupported
                .iter()
                .filter(|(_, set)| *set)
                .map(|(field, _)| *field)
                .collect(),
        })
    }
}

/// The endpoint's IP socket address, or its printable name (when it has one) and the reason.
fn socket_addr(lb: &LbEndpoint) -> Result<SocketAddr, (Option<String>, &'static str)> {
    let endpoint = match &lb.host_identifier {
        Some(HostIdentifier::Endpoint(endpoint)) => endpoint,
        Some(HostIdentifier::EndpointName(name)) => {
            return Err((Some(name.clone()), "named endpoints are not supported"));
        }
        None => return Err((None, "has no address")),
    };
    let socket = match endpoint.address.as_ref().and_then(|a| a.address.as_ref()) {
        Some(AddressKind::SocketAddress(socket)) => socket,
        Some(_) => return Err((None, "only socket addresses are supported")),
        None => return Err((None, "has no address")),
    };
    let port = match socket.port_specifier {
        Some(PortSpecifier::PortValue(port)) => port,
        Some(PortSpecifier::NamedPort(ref name)) => {
            let shown = format!("{}:{name}", socket.address);
            return Err((Some(shown), "named ports are not supported"));
        }
        None => 0,
    };
    let shown = || Some(format!("{}:{port}", socket.address));
    let ip: IpAddr = socket
        .address
        .parse()
        .map_err(|_| (shown(), "address is not an IP literal"))?;
    let port = u16::try_from(port).map_err(|_| (shown(), "port is above 65535"))?;
    if port == 0 {
        return Err((shown(), "port 0"));
    }
    Ok(SocketAddr::new(ip, port))
}

/// The string fields of the `envoy.lb` metadata namespace; other kinds of value are skipped.
fn labels(metadata: Option<&Metadata>) -> impl Iterator<Item = (&str, &str)> {
    metadata
        .and_then(|m| m.filter_metadata.get(LABEL_NAMESPACE))
        .into_iter()
        .flat_map(|fields| fields.fields.iter())
        .filter_map(|(name, value)| match &value.kind {
            Some(Kind::StringValue(text)) => Some((name.as_str(), text.as_str())),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use envoy_types::pb::envoy::config::core::v3::{
        Address, Locality as XdsLocality, SocketAddress,
    };
    use envoy_types::pb::envoy::config::endpoint::v3::cluster_load_assignment::Policy;
    use envoy_types::pb::envoy::config::endpoint::v3::{
        Endpoint as XdsEndpoint, LocalityLbEndpoints,
    };
    use envoy_types::pb::google::protobuf::{Struct, UInt32Value, Value};

    use super::*;

    fn lb(ip: &str, port: u32) -> LbEndpoint {
        LbEndpoint {
            host_identifier: Some(HostIdentifier::Endpoint(XdsEndpoint {
                address: Some(Address {
                    address: Some(AddressKind::SocketAddress(SocketAddress {
                        address: ip.into(),
                        port_specifier: Some(PortSpecifier::PortValue(port)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn assignment(groups: Vec<(u32, &str, Vec<LbEndpoint>)>) -> ClusterLoadAssignment {
        ClusterLoadAssignment {
            cluster_name: "orders".into(),
            endpoints: groups
                .into_iter()
                .map(|(priority, zone, lb_endpoints)| LocalityLbEndpoints {
                    locality: Some(XdsLocality {
                        region: "eu".into(),
                        zone: zone.into(),
                        ..Default::default()
                    }),
                    priority,
                    lb_endpoints,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn maps_weight_locality_priority_and_labels() {
        let mut weighted = lb("10.0.0.1", 80);
        weighted.load_balancing_weight = Some(UInt32Value { value: 3 });
        let fields = HashMap::from([(
            "version".to_owned(),
            Value {
                kind: Some(Kind::StringValue("v2".into())),
            },
        )]);
        weighted.metadata = Some(Metadata {
            filter_metadata: HashMap::from([(LABEL_NAMESPACE.to_owned(), Struct { fields })]),
            ..Default::default()
        });
        let cla = assignment(vec![
            (0, "a", vec![weighted]),
            (1, "b", vec![lb("::1", 81)]),
        ]);
        let eps = endpoints_from_assignment(&cla, 10).unwrap();
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].addr(), "10.0.0.1:80".parse().unwrap());
        assert_eq!(eps[0].weight().get(), 3);
        assert_eq!(eps[0].locality(), &Locality::new("eu", "a", ""));
        assert_eq!(eps[0].label("version"), Some("v2"));
        assert_eq!(eps[0].priority(), 0);
        assert_eq!(eps[0].labels().count(), 1, "no label but the metadata's");
        assert_eq!(eps[1].addr(), "[::1]:81".parse().unwrap());
        assert_eq!(eps[1].weight().get(), 1);
        assert_eq!(eps[1].priority(), 1);
    }

    #[test]
    fn leaves_out_unhealthy_and_timed_out_endpoints_and_marks_draining_ones() {
        let with = |port, health: HealthStatus| {
            let mut ep = lb("10.0.0.1", port);
            ep.health_status = health as i32;
            ep
        };
        let cla = assignment(vec![(
            0,
            "a",
            vec![
                with(1, HealthStatus::Healthy),
                with(2, HealthStatus::Unknown),
                with(3, HealthStatus::Degraded),
                with(4, HealthStatus::Unhealthy),
                with(5, HealthStatus::Draining),
                with(6, HealthStatus::Timeout),
            ],
        )]);
        let ports: Vec<(u16, bool)> = endpoints_from_assignment(&cla, 10)
            .unwrap()
            .iter()
            .map(|ep| (ep.addr().port(), ep.is_draining()))
            .collect();
        assert_eq!(ports, [(1, false), (2, false), (3, false), (5, true)]);
    }

    #[test]
    fn rejects_bad_endpoints_with_a_clear_reason() {
        let reason = |cla: ClusterLoadAssignment| {
            endpoints_from_assignment(&cla, 10).unwrap_err().to_string()
        };
        let port0 = reason(assignment(vec![(0, "a", vec![lb("10.0.0.1", 0)])]));
        assert_eq!(port0, r#"cluster "orders": endpoint 10.0.0.1:0: port 0"#);
        let host = reason(assignment(vec![(0, "a", vec![lb("orders.local", 80)])]));
        assert!(host.contains("not an IP literal"), "{host}");
        let big = reason(assignment(vec![(0, "a", vec![lb("10.0.0.1", 70000)])]));
        assert!(big.contains("above 65535"), "{big}");
        let dup = reason(assignment(vec![
            (0, "a", vec![lb("10.0.0.1", 80)]),
            (1, "b", vec![lb("10.0.0.1", 80)]),
        ]));
        assert!(dup.contains("10.0.0.1:80: listed twice"), "{dup}");
        let mut zero = lb("10.0.0.1", 80);
        zero.load_balancing_weight = Some(UInt32Value { value: 0 });
        let zero = reason(assignment(vec![(0, "a", vec![zero])]));
        assert!(zero.contains("weight"), "{zero}");
        let none = reason(assignment(vec![(0, "a", vec![LbEndpoint::default()])]));
        assert!(none.contains("#0: has no address"), "{none}");
    }

    #[test]
    fn assignment_policy_reads_overprovisioning_and_names_ignored_fields() {
        let mut cla = assignment(vec![(0, "a", vec![lb("10.0.0.1", 80)])]);
        assert_eq!(
            AssignmentPolicy::from_assignment(&cla).unwrap(),
            AssignmentPolicy::default()
        );
        cla.policy = Some(Policy {
            overprovisioning_factor: Some(UInt32Value { value: 200 }),
            endpoint_stale_after: Some(Default::default()),
            drop_overloads: vec![Default::default()],
            ..Default::default()
        });
        let policy = AssignmentPolicy::from_assignment(&cla).unwrap();
        assert_eq!(policy.overprovisioning_factor, 200);
        assert_eq!(
            policy.ignored,
            ["policy.drop_overloads", "policy.endpoint_stale_after"]
        );
        cla.policy = Some(Policy {
            overprovisioning_factor: Some(UInt32Value { value: 0 }),
            ..Default::default()
        });
        assert_eq!(
            AssignmentPolicy::from_assignment(&cla)
                .unwrap_err()
                .to_string(),
            r#"cluster "orders": policy.overprovisioning_factor is 0 (it must be above 0)"#
        );
    }

    #[test]
    fn rejects_more_endpoints_than_the_limit() {
        let cla = assignment(vec![(
            0,
            "a",
            vec![lb("10.0.0.1", 1), lb("10.0.0.1", 2), lb("10.0.0.1", 3)],
        )]);
        assert!(endpoints_from_assignment(&cla, 3).is_ok());
        assert_eq!(
            endpoints_from_assignment(&cla, 2),
            Err(InvalidResource::TooManyEndpoints {
                cluster: "orders".into(),
                count: 3,
                limit: 2
            })
        );
    }
}
