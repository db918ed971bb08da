//! [`XdsClient`]: the handle, and the task that owns the ADS stream.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mesh_balance::discover::{DiscoverHandle, HandleDiscover};
use tokio::sync::watch;
use tonic::transport::Endpoint as GrpcEndpoint;

use mesh_core::Endpoint;

use crate::ads::{self, Update};
use crate::backoff::Backoff;
use crate::metrics::{Resource, XdsMetrics};
use crate::{
    AssignmentPolicy, ClusterPolicy, InvalidResource, Protocol, XdsConfig, XdsError, delta, sotw,
};

/// What the client knows about its stream and the config it accepted, published on a watch
/// channel ([`XdsClient::status`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct XdsStatus {
    /// Whether a stream is open (the control plane answered its headers).
    pub connected: bool,
    /// How many streams have been opened so far (1 after the first connect; each reconnect adds 1).
    pub streams: u64,
    /// Responses accepted (ACKed), per type URL.
    pub accepted: BTreeMap<String, u64>,
    /// Responses rejected (NACKed), per type URL.
    pub nacked: BTreeMap<String, u64>,
    /// The last accepted `version_info`, per type URL.
    pub versions: BTreeMap<String, String>,
    /// The `error_detail` message of the last NACK we sent.
    pub last_nack: Option<String>,
    /// Why the last stream ended or failed to open.
    pub last_stream_error: Option<String>,
    /// The clusters of the last accepted CDS response.
    pub clusters: BTreeSet<String>,
    /// Subscribed clusters for which an EDS answer was accepted at least once.
    pub loaded: BTreeSet<String>,
}

/// State shared between the handle and the stream task.
#[derive(Debug)]
pub(crate) struct Shared {
    /// One handle per subscribed cluster; its set is the last accepted assignment, with the
    /// cluster's expected identity applied.
    clusters: Mutex<HashMap<String, DiscoverHandle>>,
    /// The last accepted endpoints of each subscribed cluster as EDS gave them (before the
    /// expected identity), so a CDS change of identity can be applied to them.
    assigned: Mutex<HashMap<String, Vec<Endpoint>>>,
    /// The policy of every subscribed cluster's last accepted assignment.
    assignments: watch::Sender<BTreeMap<String, AssignmentPolicy>>,
    /// The cluster names EDS subscribes to; a change is sent on the stream at once.
    subscriptions: watch::Sender<BTreeSet<String>>,
    pub(crate) status: watch::Sender<XdsStatus>,
    /// The policy of every cluster CDS named, by name.
    policies: watch::Sender<BTreeMap<String, ClusterPolicy>>,
    pub(crate) metrics: XdsMetrics,
}

impl Shared {
    fn handle(&self, cluster: &str) -> Option<DiscoverHandle> {
        let clusters = self.clusters.lock().unwrap_or_else(PoisonError::into_inner);
        clusters.get(cluster).cloned()
    }

    /// Sets the endpoints of the EDS resource `cluster` on its handle, with the expected
    /// identity of the CDS cluster it belongs to, and records them.
    fn set_endpoints(&self, handle: &DiscoverHandle, cluster: &str, endpoints: Vec<Endpoint>) {
        let policies = self.policies.borrow();
        let endpoints = match policy_of(&policies, cluster) {
            Some(policy) => policy.endpoints_with_identity(endpoints),
            None => endpoints,
        };
        drop(policies);
        self.metrics.cluster_endpoints(cluster, &endpoints);
        handle.set(endpoints);
    }
}

/// The CDS cluster whose endpoints are the EDS resource `eds_name` (the first by name, if several
/// clusters share one assignment).
fn policy_of<'a>(
    policies: &'a BTreeMap<String, ClusterPolicy>,
    eds_name: &str,
) -> Option<&'a ClusterPolicy> {
    policies.values().find(|p| p.eds_service_name == eds_name)
}

/// A client of one xDS control plane over one ADS stream (State-of-the-World).
///
/// [`connect`](Self::connect) starts a background task that keeps the stream open (reconnecting
/// with jittered backoff) and returns at once: the control plane may be down at start, and
/// [`ready`](Self::ready) is where a caller waits for it. Dropping the client stops the task; the
/// [`discover`](Self::discover) streams handed out keep their last endpoints (they never end and
/// never drop to empty because the control plane went away).
///
/// See the [crate docs](crate) for the protocol rules and the EDS mapping.
#[derive(Debug)]
pub struct XdsClient {
    shared: Arc<Shared>,
    task: tokio::task::AbortHandle,
}

impl XdsClient {
    /// Validates `config` and starts the stream task on the current tokio runtime.
    ///
    /// Fails only on a bad config or URI; an unreachable control plane is retried in the
    /// background (see [`status`](Self::status)).
    pub async fn connect(config: XdsConfig) -> Result<Self, XdsError> {
        config.validate()?;
        let endpoint = GrpcEndpoint::from_shared(config.server.clone())
            .map_err(|e| XdsError::Uri {
                uri: config.server.clone(),
                reason: e.to_string(),
            })?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true);
        let shared = Arc::new(Shared {
            clusters: Mutex::new(HashMap::new()),
            assigned: Mutex::new(HashMap::new()),
            assignments: watch::Sender::new(BTreeMap::new()),
            subscriptions: watch::Sender::new(BTreeSet::new()),
            status: watch::Sender::new(XdsStatus::default()),
            policies: watch::Sender::new(BTreeMap::new()),
            metrics: XdsMetrics::new(config.meter.as_ref()),
        });
        let task = tokio::spawn(run(shared.clone(), config, endpoint)).abort_handle();
        Ok(Self { shared, task })
    }

    /// The endpoints of `cluster` as a [`Discover`](tower::discover::Discover) stream, subscribing
    /// to its EDS resource if nobody has yet.
    ///
    /// The stream first inserts the endpoints accepted so far (none before the first answer),
    /// then follows each accepted update as a diff. Several streams for one cluster share one
    /// subscription.
    pub fn discover(&self, cluster: &str) -> HandleDiscover {
        let handle = {
            let mut clusters = self
                .shared
                .clusters
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            clusters.entry(cluster.to_owned()).or_default().clone()
        };
        self.shared
            .subscriptions
            .send_if_modified(|names| names.insert(cluster.to_owned()));
        handle.discover()
    }

    /// Stops asking for `cluster`'s endpoints. Streams already handed out keep their last set.
    pub fn unsubscribe(&self, cluster: &str) {
        self.shared
            .clusters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(cluster);
        self.shared
            .assigned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(cluster);
        self.shared
            .assignments
            .send_if_modified(|known| known.remove(cluster).is_some());
        self.shared
            .subscriptions
            .send_if_modified(|names| names.remove(cluster));
    }

    /// Waits until an EDS answer for `cluster` has been accepted, at most `timeout`.
    ///
    /// Call [`discover`](Self::discover) first (it subscribes); fails with
    /// [`XdsError::NotReady`] when the time is up.
    pub async fn ready(&self, cluster: &str, timeout: Duration) -> Result<(), XdsError> {
        let mut status = self.shared.status.subscribe();
        match tokio::time::timeout(timeout, status.wait_for(|s| s.loaded.contains(cluster))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(XdsError::Stopped),
            Err(_) => Err(XdsError::NotReady {
                cluster: cluster.to_owned(),
                timeout,
            }),
        }
    }

    /// The policy CDS gave `cluster`, if CDS named it.
    pub fn cluster_policy(&self, cluster: &str) -> Option<ClusterPolicy> {
        self.shared.policies.borrow().get(cluster).cloned()
    }

    /// Every cluster's policy, by name, as a watch channel that changes with each accepted CDS
    /// update (a policy change is what should reconfigure the stack of that cluster).
    pub fn policies(&self) -> watch::Receiver<BTreeMap<String, ClusterPolicy>> {
        self.shared.policies.subscribe()
    }

    /// The policy of `cluster`'s last accepted endpoint assignment (`cluster` is the EDS resource
    /// name, as given to [`discover`](Self::discover)); `None` before its first one.
    pub fn assignment_policy(&self, cluster: &str) -> Option<AssignmentPolicy> {
        self.shared.assignments.borrow().get(cluster).cloned()
    }

    /// `cluster`'s overprovisioning factor, in percent (140, Envoy's default, when its
    /// assignment sets none); `None` before its first assignment. Turn it into mesh-balance's
    /// locality threshold with [`locality_threshold`](crate::locality_threshold).
    pub fn overprovisioning(&self, cluster: &str) -> Option<u32> {
        self.shared
            .assignments
            .borrow()
            .get(cluster)
            .map(|p| p.overprovisioning_factor)
    }

    /// Every subscribed cluster's assignment policy, by EDS resource name, as a watch channel
    /// that changes with each accepted EDS update that changes one.
    pub fn assignment_policies(&self) -> watch::Receiver<BTreeMap<String, AssignmentPolicy>> {
        self.shared.assignments.subscribe()
    }

    /// The client's status; wait on it with [`watch::Receiver::wait_for`].
    pub fn status(&self) -> watch::Receiver<XdsStatus> {
        self.shared.status.subscribe()
    }
}

impl Drop for XdsClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The stream task: one stream at a time, a jittered backoff between them, forever.
async fn run(shared: Arc<Shared>, config: XdsConfig, endpoint: GrpcEndpoint) {
    let node = ads::node(&config);
    let mut backoff = Backoff::new(config.backoff_base, config.backoff_max, config.seed);
    let mut subscriptions = shared.subscriptions.subscribe();
    loop {
        let (shared, config, node, endpoint) = (&*shared, &config, &node, &endpoint);
        let subs = &mut subscriptions;
        let ended = match config.protocol {
            Protocol::StateOfTheWorld => {
                sotw::stream_once(shared, config, node, endpoint, subs, &mut backoff).await
            }
            Protocol::Delta => {
                delta::stream_once(shared, config, node, endpoint, subs, &mut backoff).await
            }
        };
        let Err(error) = ended;
        tracing::warn!(server = %config.server, %error, "xDS stream ended; last accepted config kept");
        shared.status.send_modify(|s| {
            s.connected = false;
            s.last_stream_error = Some(error);
        });
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Applies an accepted update and counts it.
///
/// `removed_clusters` is `None` for SotW (a CDS response is the full set) and the removed names
/// for Delta (a CDS response adds to the set). An EDS answer for a cluster nobody subscribes to
/// any more is dropped.
pub(crate) fn apply(
    shared: &Shared,
    type_url: &str,
    version: &str,
    update: Update,
    removed_clusters: Option<&[String]>,
) {
    let mut loaded = Vec::new();
    let mut cluster_names = None;
    let mut gone = Vec::new();
    match update {
        Update::Clusters { policies, digests } => {
            let (names, removed) = apply_clusters(shared, policies, &digests, removed_clusters);
            cluster_names = Some(names);
            gone = removed;
        }
        Update::Endpoints(assignments) => loaded = apply_assignments(shared, assignments),
    }
    tracing::debug!(%type_url, %version, "xDS update accepted");
    shared.metrics.update(type_url, true);
    shared.metrics.accepted_version(type_url, version);
    shared.status.send_modify(|s| {
        *s.accepted.entry(type_url.to_owned()).or_default() += 1;
        s.versions.insert(type_url.to_owned(), version.to_owned());
        s.loaded.extend(loaded);
        for policy in &gone {
            s.loaded.remove(&policy.eds_service_name);
        }
        if let Some(names) = cluster_names {
            s.clusters = names;
        }
    });
}

/// Applies accepted clusters; returns the names of every known cluster and the policies of the
/// clusters that are gone.
fn apply_clusters(
    shared: &Shared,
    policies: BTreeMap<String, ClusterPolicy>,
    digests: &BTreeMap<String, u64>,
    removed_clusters: Option<&[String]>,
) -> (BTreeSet<String>, Vec<ClusterPolicy>) {
    for policy in policies.values() {
        let digest = digests.get(&policy.name).copied().unwrap_or_default();
        let new_version =
            shared
                .metrics
                .ignored_fields(Resource::Cluster, &policy.name, digest, &policy.ignored);
        let before = shared
            .policies
            .borrow()
            .get(&policy.name)
            .map(|p| p.ignored.clone());
        if new_version && before.as_ref() != Some(&policy.ignored) {
            tracing::info!(cluster = %policy.name, fields = ?policy.ignored,
                "xDS cluster sets fields this client does not support; ignored");
        }
    }
    let mut gone = Vec::new();
    let mut names = BTreeSet::new();
    let mut changed_identity = Vec::new();
    shared.policies.send_modify(|known| {
        let next = match removed_clusters {
            None => policies,
            Some(removed) => {
                let mut next = known.clone();
                next.extend(policies);
                for name in removed {
                    next.remove(name);
                }
                next
            }
        };
        gone = known
            .values()
            .filter(|p| !next.contains_key(&p.name))
            .cloned()
            .collect();
        changed_identity = next
            .values()
            .filter(|p| {
                known.get(&p.name).map(ClusterPolicy::expected_identity)
                    != Some(p.expected_identity())
            })
            .map(|p| p.eds_service_name.clone())
            .collect();
        *known = next;
        names = known.keys().cloned().collect();
    });
    // A new expected identity applies to the endpoints already known at once.
    for eds_name in changed_identity {
        let endpoints = shared
            .assigned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&eds_name)
            .cloned();
        if let (Some(handle), Some(endpoints)) = (shared.handle(&eds_name), endpoints) {
            shared.set_endpoints(&handle, &eds_name, endpoints);
        }
    }
    // A cluster the control plane removed takes its endpoints along: the balancer lets requests
    // in flight finish and fails new ones fast. (A control plane that is merely away removes
    // nothing: only an accepted CDS answer gets here.)
    for policy in &gone {
        let eds_name = &policy.eds_service_name;
        shared
            .metrics
            .forget_resource(Resource::Cluster, &policy.name);
        shared
            .metrics
            .forget_resource(Resource::Assignment, eds_name);
        // Its endpoints are forgotten too: a cluster that comes back waits for a new assignment
        // instead of reviving the old one.
        shared
            .assigned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(eds_name);
        shared
            .assignments
            .send_if_modified(|known| known.remove(eds_name).is_some());
        if let Some(handle) = shared.handle(eds_name) {
            tracing::info!(cluster = %policy.name,
                "xDS cluster removed; its endpoints leave (requests in flight finish)");
            handle.set([]);
            shared.metrics.cluster_endpoints(eds_name, &[]);
        }
    }
    (names, gone)
}

/// Applies accepted endpoint assignments to the subscribed clusters; returns their names.
fn apply_assignments(shared: &Shared, assignments: Vec<ads::Assignment>) -> Vec<String> {
    let mut loaded = Vec::new();
    for assignment in assignments {
        let cluster = assignment.cluster;
        let Some(handle) = shared.handle(&cluster) else {
            continue;
        };
        let policy = assignment.policy;
        let new_version = shared.metrics.ignored_fields(
            Resource::Assignment,
            &cluster,
            assignment.digest,
            &policy.ignored,
        );
        let before = shared
            .assignments
            .borrow()
            .get(&cluster)
            .map(|p| p.ignored.clone());
        if new_version && before.as_ref() != Some(&policy.ignored) {
            tracing::info!(%cluster, fields = ?policy.ignored,
                "xDS endpoint assignment sets fields this client does not support; ignored");
        }
        shared
            .assigned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cluster.clone(), assignment.endpoints.clone());
        shared.set_endpoints(&handle, &cluster, assignment.endpoints);
        shared.assignments.send_if_modified(|known| {
            let changed = known.get(&cluster) != Some(&policy);
            known.insert(cluster.clone(), policy);
            changed
        });
        loaded.push(cluster);
    }
    loaded
}

/// Counts and logs a rejected update; the caller sends the NACK.
pub(crate) fn reject(shared: &Shared, type_url: &str, version: &str, error: &InvalidResource) {
    tracing::warn!(%type_url, %version, %error,
        "xDS update rejected (NACK); last accepted config kept");
    shared.metrics.update(type_url, false);
    shared.status.send_modify(|s| {
        *s.nacked.entry(type_url.to_owned()).or_default() += 1;
        s.last_nack = Some(error.to_string());
    });
}
