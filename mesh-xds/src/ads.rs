//! The State-of-the-World ADS protocol, without I/O: what to send, and what a response means.
//!
//! Kept apart from the stream task so ACK/NACK rules are tested on plain values.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hasher};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Locality as XdsLocality, Node};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;
use mesh_core::Endpoint;
use prost::Message;

use crate::{
    AssignmentPolicy, CLUSTER_TYPE_URL, ClusterPolicy, ENDPOINT_TYPE_URL, InvalidResource,
    XdsConfig,
};

/// `google.rpc.Code.INVALID_ARGUMENT`, the code of every NACK we send.
const INVALID_ARGUMENT: i32 = 3;

/// The user agent we announce in `node.user_agent_name`.
const USER_AGENT: &str = "towermesh-xds";

/// What one type URL's stream state remembers: the last accepted version and the last nonce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TypeState {
    pub(crate) version: String,
    pub(crate) nonce: String,
}

impl TypeState {
    /// Records an accepted response and returns its ACK.
    pub(crate) fn ack(
        &mut self,
        node: &Node,
        response: &DiscoveryResponse,
        names: &BTreeSet<String>,
    ) -> DiscoveryRequest {
        self.version.clone_from(&response.version_info);
        self.nonce.clone_from(&response.nonce);
        self.request(node, &response.type_url, names, None)
    }

    /// Records a rejected response and returns its NACK: the previous version, the new nonce.
    pub(crate) fn nack(
        &mut self,
        node: &Node,
        response: &DiscoveryResponse,
        names: &BTreeSet<String>,
        error: &InvalidResource,
    ) -> DiscoveryRequest {
        self.nonce.clone_from(&response.nonce);
        let status = Status {
            code: INVALID_ARGUMENT,
            message: error.to_string(),
            details: Vec::new(),
        };
        self.request(node, &response.type_url, names, Some(status))
    }

    /// A request for `names` of `type_url` carrying this state (a subscription change, or the
    /// first request of a stream when the state is fresh).
    pub(crate) fn request(
        &self,
        node: &Node,
        type_url: &str,
        names: &BTreeSet<String>,
        error_detail: Option<Status>,
    ) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: self.version.clone(),
            node: Some(node.clone()),
            resource_names: names.iter().cloned().collect(),
            type_url: type_url.to_owned(),
            response_nonce: self.nonce.clone(),
            error_detail,
            ..Default::default()
        }
    }
}

/// The `node` we present: id, cluster, locality and user agent.
pub(crate) fn node(config: &XdsConfig) -> Node {
    let locality = &config.locality;
    let known = !(locality.region().is_empty()
        && locality.zone().is_empty()
        && locality.subzone().is_empty());
    Node {
        id: config.node_id.clone(),
        cluster: config.node_cluster.clone(),
        locality: known.then(|| XdsLocality {
            region: locality.region().to_owned(),
            zone: locality.zone().to_owned(),
            sub_zone: locality.subzone().to_owned(),
        }),
        user_agent_name: USER_AGENT.to_owned(),
        ..Default::default()
    }
}

/// The content of a valid response.
#[derive(Debug)]
pub(crate) enum Update {
    /// CDS: the policy of each cluster the response carries (for SotW, every cluster), and a
    /// digest of each cluster's bytes.
    Clusters {
        policies: BTreeMap<String, ClusterPolicy>,
        digests: BTreeMap<String, u64>,
    },
    /// EDS: each assignment the response carries.
    Endpoints(Vec<Assignment>),
}

/// One accepted endpoint assignment.
#[derive(Debug)]
pub(crate) struct Assignment {
    /// The EDS resource name (`cluster_name`).
    pub(crate) cluster: String,
    /// The endpoints kept (draining ones included), before any expected identity is applied.
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) policy: AssignmentPolicy,
    /// A digest of the resource's bytes.
    pub(crate) digest: u64,
}

/// A digest of a resource's bytes: "the same version of this resource" without trusting a
/// control plane's version strings (SotW has none per resource). Equal bytes give equal digests
/// across runs (the hasher's keys are fixed); a re-encoding of the same message with its map
/// entries in another order counts as a new version, which only means one more count.
fn digest(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// Decodes and validates a whole SotW response; any invalid resource rejects all of it.
pub(crate) fn decode(
    response: &DiscoveryResponse,
    max_endpoints: usize,
) -> Result<Update, InvalidResource> {
    decode_resources(&response.type_url, &response.resources, max_endpoints)
}

/// Decodes and validates the resources of one response (SotW or Delta) of `type_url`; any
/// invalid resource rejects all of them.
pub(crate) fn decode_resources<'a>(
    type_url: &str,
    resources: impl IntoIterator<Item = &'a Any>,
    max_endpoints: usize,
) -> Result<Update, InvalidResource> {
    let unexpected = |type_url: &str| InvalidResource::UnexpectedType {
        type_url: type_url.to_owned(),
    };
    if type_url != CLUSTER_TYPE_URL && type_url != ENDPOINT_TYPE_URL {
        return Err(unexpected(type_url));
    }
    let malformed = |e: prost::DecodeError| InvalidResource::Malformed {
        type_url: type_url.to_owned(),
        reason: e.to_string(),
    };
    let mut seen = BTreeSet::new();
    let mut clusters = Vec::new();
    let mut policies = BTreeMap::new();
    let mut digests = BTreeMap::new();
    for resource in resources {
        if resource.type_url != type_url {
            return Err(unexpected(&resource.type_url));
        }
        let bytes = resource.value.as_slice();
        if type_url == CLUSTER_TYPE_URL {
            let cluster = Cluster::decode(bytes).map_err(malformed)?;
            if !seen.insert(cluster.name.clone()) {
                return Err(InvalidResource::DuplicateCluster {
                    cluster: cluster.name,
                });
            }
            policies.insert(cluster.name.clone(), ClusterPolicy::from_cluster(&cluster)?);
            digests.insert(cluster.name, digest(bytes));
        } else {
            let cla = ClusterLoadAssignment::decode(bytes).map_err(malformed)?;
            if !seen.insert(cla.cluster_name.clone()) {
                return Err(InvalidResource::DuplicateCluster {
                    cluster: cla.cluster_name,
                });
            }
            let endpoints = crate::endpoints_from_assignment(&cla, max_endpoints)?;
            let policy = AssignmentPolicy::from_assignment(&cla)?;
            clusters.push(Assignment {
                cluster: cla.cluster_name,
                endpoints,
                policy,
                digest: digest(bytes),
            });
        }
    }
    Ok(if type_url == CLUSTER_TYPE_URL {
        Update::Clusters { policies, digests }
    } else {
        Update::Endpoints(clusters)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(version: &str, nonce: &str, resources: Vec<Any>) -> DiscoveryResponse {
        DiscoveryResponse {
            version_info: version.into(),
            nonce: nonce.into(),
            type_url: ENDPOINT_TYPE_URL.into(),
            resources,
            ..Default::default()
        }
    }

    fn cla(name: &str) -> Any {
        envoy_types::util::pack_any(ClusterLoadAssignment {
            cluster_name: name.into(),
            ..Default::default()
        })
    }

    #[test]
    fn ack_carries_the_new_version_and_nonce_and_nack_the_old_version() {
        let node = node(&XdsConfig::new("http://x", "n"));
        let names = BTreeSet::from(["orders".to_owned()]);
        let mut state = TypeState::default();
        let first = response("1", "a", vec![cla("orders")]);
        let ack = state.ack(&node, &first, &names);
        assert_eq!(
            (ack.version_info.as_str(), ack.response_nonce.as_str()),
            ("1", "a")
        );
        assert_eq!(ack.resource_names, ["orders"]);
        assert_eq!(ack.error_detail, None);

        let bad = response("2", "b", vec![cla("orders"), cla("orders")]);
        let error = decode(&bad, 10).unwrap_err();
        let nack = state.nack(&node, &bad, &names, &error);
        assert_eq!(
            (nack.version_info.as_str(), nack.response_nonce.as_str()),
            ("1", "b")
        );
        let detail = nack.error_detail.expect("a NACK has error_detail");
        assert_eq!(detail.code, INVALID_ARGUMENT);
        assert_eq!(
            detail.message,
            r#"cluster "orders" appears twice in one response"#
        );
        assert_eq!(state.version, "1");
    }

    #[test]
    fn malformed_and_mistyped_resources_are_rejected() {
        let garbage = Any {
            type_url: ENDPOINT_TYPE_URL.into(),
            value: vec![0xff, 0xff, 0xff],
        };
        let err = decode(&response("1", "a", vec![garbage]), 10).unwrap_err();
        assert!(matches!(err, InvalidResource::Malformed { .. }), "{err}");

        let mistyped = Any {
            type_url: CLUSTER_TYPE_URL.into(),
            value: Vec::new(),
        };
        let err = decode(&response("1", "a", vec![mistyped]), 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unexpected resource type {CLUSTER_TYPE_URL}")
        );
    }

    #[test]
    fn node_carries_id_cluster_and_known_locality() {
        let config = XdsConfig::new("http://x", "n1")
            .node_cluster("orders")
            .locality(mesh_core::Locality::new("eu", "eu-1a", ""));
        let node = node(&config);
        assert_eq!((node.id.as_str(), node.cluster.as_str()), ("n1", "orders"));
        assert_eq!(node.locality.unwrap().zone, "eu-1a");
        assert_eq!(super::node(&XdsConfig::new("http://x", "n")).locality, None);
    }
}
