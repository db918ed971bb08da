//! A whole client from an xDS cluster name (feature `xds`): mesh-xds (crate `towermesh-xds`)
//! re-exported, plus [`XdsServiceExt::service`].
//!
//! ```text
//! XdsClient::connect(config).await?                    one ADS stream to the control plane
//!   .service("outbound|8080||reviews.default.svc.cluster.local")   an XdsService (settings)
//!   .await?                                            waits, bounded by ready_timeout:
//!      1. CDS names the cluster          → its ClusterPolicy (else UnknownCluster)
//!      2. subscribe to its EDS resource  → a Discover stream of its endpoints
//!      3. Client::builder() … .balance(policy.balance_config(base)).build()
//!      4. the first EDS answer arrives   (else NoAssignment)
//!   → mesh::Client: trace → timeout → retry + budget → balancer → breakers → HTTP (over mTLS
//!     when the builder has `tls`)
//!
//! while the client lives, a task follows CDS:   policy changed → BalanceHandle::reconfigure
//!                                  and EDS:     endpoints changed → the balancer's diffs
//! ```
//!
//! The client is an ordinary [`Client`]: `Clone + Send + Sync`, always ready, usable as an axum
//! state or a tonic channel.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use mesh::xds::{XdsClient, XdsConfig, XdsServiceExt};
//! use tower::ServiceExt;
//!
//! # async fn run() -> Result<(), mesh::BoxError> {
//! let xds = XdsClient::connect(XdsConfig::new("http://istiod.istio-system:15010", "sidecar~10.0.0.7~reviews-1.default~default.svc.cluster.local")).await?;
//! let reviews = xds
//!     .service("outbound|8080||reviews.default.svc.cluster.local")
//!     .client(mesh::Client::builder().timeout(Duration::from_secs(2)))
//!     .await?;
//! let request = http::Request::get("http://reviews/").body(String::new())?;
//! let response = reviews.oneshot(request).await?;
//! # drop(response); Ok(()) }
//! ```
//!
//! # What follows the control plane while the client runs
//!
//! - **Endpoints** (EDS), always: each accepted update reaches the balancer as a diff, so an
//!   unchanged endpoint keeps its load estimate, breaker and slow-start ramp.
//! - **The balancer's policy** (CDS): load strategy, outlier detection, panic threshold, locality
//!   tiers, slow start and the pending-request bound are recomputed from the *base* settings
//!   (the builder's [`balance`](ClientBuilder::balance)) and the new policy, and applied with
//!   [`BalanceHandle::reconfigure`](mesh_balance::BalanceHandle::reconfigure): requests in
//!   flight are not touched, the next pick uses the new settings. A policy the balancer refuses
//!   (it cannot switch hashing on or off while running) is logged and the previous settings stay.
//! - **Fixed at build time**: the connect timeout (`connect_timeout`, a connection setting of
//!   every endpoint client) and the EDS resource name (`eds_service_name`). A cluster whose
//!   `eds_service_name` changes needs a new client.
//! - **A removed cluster**: its endpoints leave (the balancer lets requests in flight finish and
//!   fails new ones fast with mesh-core's `NoEndpoints`); if CDS brings it back, its endpoints
//!   return with the next EDS answer.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use mesh_balance::{BalanceConfig, BalanceHandle, TierSource};
use tokio::time::Instant;

pub use mesh_xds::*;

use crate::{Client, ClientBuilder, ConfigError};

/// How long [`XdsService`] waits for the cluster's CDS and first EDS answer, unless
/// [`ready_timeout`](XdsService::ready_timeout) says otherwise: 10 s.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Building a client from an xDS cluster failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XdsServiceError {
    /// The control plane's CDS did not name the cluster in time (a typo in the name, or a
    /// control plane that never answered: see [`XdsClient::status`]).
    #[error("xDS cluster `{cluster}` unknown: no CDS answer named it within {timeout:?}")]
    UnknownCluster {
        /// The cluster asked for.
        cluster: String,
        /// The time waited.
        timeout: Duration,
    },
    /// CDS named the cluster but no endpoint assignment (EDS) for it arrived in time.
    #[error(
        "xDS cluster `{cluster}`: no endpoint assignment (EDS resource `{resource}`) within {timeout:?}"
    )]
    NoAssignment {
        /// The cluster asked for.
        cluster: String,
        /// The EDS resource subscribed to (the cluster's `eds_service_name`, or its name).
        resource: String,
        /// The time waited.
        timeout: Duration,
    },
    /// The xDS client's stream task is gone (the runtime is shutting down).
    #[error("xDS client stopped")]
    Stopped,
    /// The client settings (or the cluster's policy applied to them) were refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// [`service`](XdsServiceExt::service) on an [`XdsClient`].
pub trait XdsServiceExt {
    /// A client of `cluster` (its CDS name: Istio's `outbound|8080||reviews.default.svc.cluster.local`,
    /// a Kuma or plain cluster name), built when awaited; see the [module docs](self).
    fn service(&self, cluster: &str) -> XdsService<'_>;
}

impl XdsServiceExt for XdsClient {
    fn service(&self, cluster: &str) -> XdsService<'_> {
        XdsService {
            xds: self,
            cluster: cluster.to_owned(),
            client: Client::builder(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }
}

/// The settings of one xDS-fed client; await it (or call [`build`](Self::build)) for the
/// [`Client`].
#[must_use = "an XdsService does nothing until awaited"]
pub struct XdsService<'a> {
    xds: &'a XdsClient,
    cluster: String,
    client: ClientBuilder,
    ready_timeout: Duration,
}

impl std::fmt::Debug for XdsService<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsService")
            .field("cluster", &self.cluster)
            .field("client", &self.client)
            .field("ready_timeout", &self.ready_timeout)
            .finish_non_exhaustive()
    }
}

impl<'a> XdsService<'a> {
    /// The client's settings (timeout, retries, budget, breakers, TLS, tracing, metrics): its
    /// [`balance`](ClientBuilder::balance) settings are the *base* the cluster's policy is
    /// applied to, at build time and at every CDS change. Its discovery source is replaced by
    /// the cluster's endpoints, and its [`name`](ClientBuilder::name) defaults to the cluster's.
    /// Default: [`Client::builder`].
    pub fn client(mut self, builder: ClientBuilder) -> Self {
        self.client = builder;
        self
    }

    /// How long to wait for CDS to name the cluster and for its first endpoint assignment,
    /// together. Default [`DEFAULT_READY_TIMEOUT`] (10 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Waits for the cluster and builds its client; see the [module docs](self).
    ///
    /// # Errors
    ///
    /// [`XdsServiceError::UnknownCluster`] or [`NoAssignment`](XdsServiceError::NoAssignment)
    /// when the control plane does not answer in time, [`Config`](XdsServiceError::Config) when
    /// the settings are refused.
    pub async fn build(self) -> Result<Client, XdsServiceError> {
        let Self {
            xds,
            cluster,
            client,
            ready_timeout,
        } = self;
        let deadline = Instant::now() + ready_timeout;
        let mut policies = xds.policies();
        let policy = {
            let named = policies.wait_for(|known| known.contains_key(&cluster));
            match tokio::time::timeout_at(deadline, named).await {
                Ok(Ok(known)) => known[&cluster].clone(),
                Ok(Err(_)) => return Err(XdsServiceError::Stopped),
                Err(_) => {
                    return Err(XdsServiceError::UnknownCluster {
                        cluster,
                        timeout: ready_timeout,
                    });
                }
            }
        };
        let resource = policy.eds_service_name.clone();
        let base = client.balance.clone();
        let assignment = xds.assignment_policy(&resource);
        let mut builder =
            client.balance(cluster_balance_config(&base, &policy, assignment.as_ref()));
        if builder.name.is_none() {
            builder = builder.name(cluster.clone());
        }
        if let Some(timeout) = policy.connect_timeout {
            builder.http = builder.http.connect_timeout(timeout);
        }
        let client = builder.discover(xds.discover(&resource)).build()?;
        drop(policies);
        apply_retry_limit(&client, &policy);
        tokio::spawn(follow_policy(
            xds,
            &cluster,
            (Some(policy), assignment),
            base,
            &client,
        ));
        let left = deadline.saturating_duration_since(Instant::now());
        match xds.ready(&resource, left).await {
            Ok(()) => Ok(client),
            Err(XdsError::NotReady { .. }) => Err(XdsServiceError::NoAssignment {
                cluster,
                resource,
                timeout: ready_timeout,
            }),
            Err(_) => Err(XdsServiceError::Stopped),
        }
    }
}

impl<'a> IntoFuture for XdsService<'a> {
    type Output = Result<Client, XdsServiceError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.build())
    }
}

/// The balancer settings of a cluster: `base` with the cluster's [`ClusterPolicy`] applied
/// ([`ClusterPolicy::balance_config`]), and its locality tiers:
///
/// - by **xDS priority** (mesh-balance's [`TierSource::Priority`]): traffic stays on priority 0
///   while its healthy share is at least `1 / overprovisioning_factor` (the EDS assignment's
///   factor, Envoy's default 140 % when it has none yet) and spills to the next priority below
///   it, as Envoy does (and as Istio's locality failover, which it expresses as priorities,
///   expects);
/// - by **proximity** to the base's local locality instead, when the cluster asks for zone-aware
///   routing: mesh-balance tiers on one dimension, so such a cluster's priorities are not
///   routed on.
///
/// The base's other locality settings (strict mode, failover regions) are kept.
pub fn cluster_balance_config(
    base: &BalanceConfig,
    policy: &ClusterPolicy,
    assignment: Option<&AssignmentPolicy>,
) -> BalanceConfig {
    let config = policy.balance_config(base.clone());
    let proximity = policy
        .locality
        .as_ref()
        .is_some_and(LocalityPolicy::prefers_proximity);
    let mut locality = base.get_locality().clone();
    locality = match proximity {
        true => locality.tiers(TierSource::Proximity),
        false => locality.tiers(TierSource::Priority),
    };
    let factor = assignment.map_or(DEFAULT_OVERPROVISIONING_FACTOR, |a| {
        a.overprovisioning_factor
    });
    config.locality(locality.threshold(locality_threshold(factor)))
}

/// `policy`'s `circuit_breakers.max_retries` as the client's [`RetryLimit`] (unbounded when the
/// cluster does not set it).
///
/// [`RetryLimit`]: mesh_retry::retry::RetryLimit
pub fn apply_retry_limit(client: &Client, policy: &ClusterPolicy) {
    if let Some(limit) = client.retry_limit() {
        limit.set_max(policy.circuit_breakers.max_retries.unwrap_or(u32::MAX));
    }
}

/// Applies each change of a cluster's CDS policy or EDS assignment policy (overprovisioning
/// factor) to a running client, until the client is gone or the xDS client stops: the balancer
/// settings are [`cluster_balance_config`] over `base`, handed to
/// [`BalanceHandle::reconfigure`](mesh_balance::BalanceHandle::reconfigure), and the
/// retries in flight are bounded by the cluster's `max_retries` ([`apply_retry_limit`]).
/// `applied` is what the client was built with (`(None, None)`: built before CDS named the cluster, so the first
/// policy to arrive is applied).
///
/// [`XdsServiceExt::service`] runs this for the clients it builds; a proxy that builds its
/// [`Client`] itself (with [`XdsClient::discover`] as its discovery) spawns it next to it.
/// A cluster that leaves CDS changes nothing here (its endpoints leave through discovery); a
/// refused policy is logged and the previous settings stay. The future holds no reference to
/// `xds`.
pub fn follow_policy(
    xds: &XdsClient,
    cluster: &str,
    applied: (Option<ClusterPolicy>, Option<AssignmentPolicy>),
    base: BalanceConfig,
    client: &Client,
) -> impl Future<Output = ()> + Send + 'static {
    let balance: Option<BalanceHandle> = client.balance().cloned();
    let retry_limit = client.retry_limit().cloned();
    let mut policies = xds.policies();
    let mut assignments = xds.assignment_policies();
    let cluster = cluster.to_owned();
    let mut applied = applied;
    async move {
        // A client made with `Client::from_service` has nothing to reconfigure.
        let Some(balance) = balance else { return };
        loop {
            tokio::select! {
                changed = policies.changed() => if changed.is_err() { return },
                changed = assignments.changed() => if changed.is_err() { return },
            }
            let Some(policy) = policies.borrow_and_update().get(&cluster).cloned() else {
                continue;
            };
            let assignment = assignments
                .borrow_and_update()
                .get(&policy.eds_service_name)
                .cloned();
            let current = (Some(policy), assignment);
            if current == applied {
                continue;
            }
            let (Some(policy), assignment) = &current else {
                continue;
            };
            if let Some(limit) = &retry_limit {
                limit.set_max(policy.circuit_breakers.max_retries.unwrap_or(u32::MAX));
            }
            let config = cluster_balance_config(&base, policy, assignment.as_ref());
            match balance.reconfigure(config) {
                Ok(true) => {
                    tracing::info!(%cluster, "xDS cluster policy changed; balancer reconfigured");
                }
                Ok(false) => return,
                Err(error) => {
                    tracing::warn!(%cluster, %error,
                        "xDS cluster policy refused by the running balancer; previous settings kept");
                }
            }
            applied = current;
        }
    }
}
