//! What can go wrong: a bad config, a cluster that never got endpoints, an invalid resource.

use std::time::Duration;

/// An error of the xDS client's API.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XdsError {
    /// A field of [`XdsConfig`](crate::XdsConfig) is unusable.
    #[error("invalid xDS config: {field} {reason}")]
    Config {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The control plane's URI does not parse.
    #[error("invalid xDS server URI {uri:?}: {reason}")]
    Uri {
        /// The URI as given.
        uri: String,
        /// Why it was refused.
        reason: String,
    },
    /// No EDS answer for the cluster arrived within the readiness timeout.
    #[error("cluster {cluster:?}: no endpoints from the control plane within {timeout:?}")]
    NotReady {
        /// The cluster waited for.
        cluster: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The client's stream task has stopped (the client was dropped or the runtime shut down).
    #[error("the xDS stream task has stopped")]
    Stopped,
}

/// Why a resource from the control plane was rejected; its text is the NACK's `error_detail`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidResource {
    /// The resource's bytes are not the protobuf message its type URL names.
    #[error("malformed {type_url} resource: {reason}")]
    Malformed {
        /// The type URL of the resource.
        type_url: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// A response of a type URL we did not subscribe to, or a resource of another type inside it.
    #[error("unexpected resource type {type_url}")]
    UnexpectedType {
        /// The type URL received.
        type_url: String,
    },
    /// An endpoint is unusable.
    #[error("cluster {cluster:?}: endpoint {endpoint}: {reason}")]
    Endpoint {
        /// The cluster the assignment is for.
        cluster: String,
        /// The endpoint as the control plane wrote it (`address:port`, or its position).
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The assignment has more endpoints than
    /// [`max_endpoints_per_cluster`](crate::XdsConfig::max_endpoints_per_cluster).
    #[error("cluster {cluster:?}: {count} endpoints exceed the limit of {limit}")]
    TooManyEndpoints {
        /// The cluster the assignment is for.
        cluster: String,
        /// How many endpoints it named.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A cluster (CDS) has an impossible value.
    #[error("cluster {cluster:?}: {reason}")]
    Cluster {
        /// The cluster's name.
        cluster: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The same cluster appears twice in one response.
    #[error("cluster {cluster:?} appears twice in one response")]
    DuplicateCluster {
        /// The cluster's name.
        cluster: String,
    },
}
