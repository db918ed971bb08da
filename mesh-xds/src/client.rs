//! [`XdsClient`]: the handle, and the task that owns the ADS stream.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use futures_core::Stream;
use mesh_balance::discover::{DiscoverHandle, HandleDiscover};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::transport::Endpoint as GrpcEndpoint;

use crate::ads::{self, TypeState, Update};
use crate::backoff::{Backoff, NackPacer};
use crate::{CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, XdsConfig, XdsError};

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
struct Shared {
    /// One handle per subscribed cluster; its set is the last accepted assignment.
    clusters: Mutex<HashMap<String, DiscoverHandle>>,
    /// The cluster names EDS subscribes to; a change is sent on the stream at once.
    subscriptions: watch::Sender<BTreeSet<String>>,
    status: watch::Sender<XdsStatus>,
}

impl Shared {
    fn handle(&self, cluster: &str) -> Option<DiscoverHandle> {
        let clusters = self.clusters.lock().unwrap_or_else(PoisonError::into_inner);
        clusters.get(cluster).cloned()
    }
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
            subscriptions: watch::Sender::new(BTreeSet::new()),
            status: watch::Sender::new(XdsStatus::default()),
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
        let Err(error) = stream_once(
            &shared,
            &config,
            &node,
            &endpoint,
            &mut subscriptions,
            &mut backoff,
        )
        .await;
        tracing::warn!(server = %config.server, %error, "xDS stream ended; last accepted config kept");
        shared.status.send_modify(|s| {
            s.connected = false;
            s.last_stream_error = Some(error);
        });
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// The requests of one stream. Unbounded on purpose: we send only in answer to a response or a
/// subscription change, one request each, so the queue is bounded by our own activity.
struct RequestStream(mpsc::UnboundedReceiver<DiscoveryRequest>);

impl Stream for RequestStream {
    type Item = DiscoveryRequest;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// One ADS stream, from connect to its end; returns why it ended.
async fn stream_once(
    shared: &Shared,
    config: &XdsConfig,
    node: &Node,
    endpoint: &GrpcEndpoint,
    subscriptions: &mut watch::Receiver<BTreeSet<String>>,
    backoff: &mut Backoff,
) -> Result<Infallible, String> {
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut client = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(config.max_response_bytes);
    let (tx, rx) = mpsc::unbounded_channel();
    let send = |request| {
        tx.send(request)
            .map_err(|_| "request stream closed".to_owned())
    };

    // A new stream starts with empty versions and nonces: the control plane resends everything,
    // and the diffing handles make that a no-op for endpoints that did not change.
    let mut cds = TypeState::default();
    let mut eds = TypeState::default();
    let wildcard = BTreeSet::new();
    send(cds.request(node, CLUSTER_TYPE_URL, &wildcard, None))?;
    let mut names = subscriptions.borrow_and_update().clone();
    if !names.is_empty() {
        send(eds.request(node, ENDPOINT_TYPE_URL, &names, None))?;
    }

    // A gRPC server may hold back the response headers until its first message, so keep sending
    // subscription changes while the call opens.
    let call = client.stream_aggregated_resources(RequestStream(rx));
    tokio::pin!(call);
    let mut responses = loop {
        tokio::select! {
            opened = &mut call => break opened.map_err(|s| format!("open stream: {s}"))?.into_inner(),
            changed = subscriptions.changed() => {
                changed.map_err(|_| "client dropped".to_owned())?;
                names = subscriptions.borrow_and_update().clone();
                send(eds.request(node, ENDPOINT_TYPE_URL, &names, None))?;
            }
        }
    };
    shared.status.send_modify(|s| {
        s.connected = true;
        s.streams += 1;
    });

    // Per type URL (0 = CDS, 1 = EDS): the NACK pace and a NACK held back by it.
    let pacer = |salt: u64| {
        let seed = config.seed.map(|seed| seed ^ salt);
        NackPacer::new(Backoff::new(config.backoff_base, config.backoff_max, seed))
    };
    let mut pacers = [pacer(1), pacer(2)];
    let mut held: [Option<(Instant, DiscoveryRequest)>; 2] = [None, None];
    loop {
        let next_held = held.iter().flatten().map(|(at, _)| *at).min();
        tokio::select! {
            message = responses.message() => {
                let response = match message {
                    Ok(Some(response)) => response,
                    Ok(None) => return Err("closed by the control plane".to_owned()),
                    Err(status) => return Err(format!("stream failed: {status}")),
                };
                backoff.reset();
                let (slot, state, names) = match response.type_url.as_str() {
                    CLUSTER_TYPE_URL => (0, &mut cds, &wildcard),
                    ENDPOINT_TYPE_URL => (1, &mut eds, &names),
                    // Not ours: NACK it at once without touching any state.
                    _ => {
                        let mut stray = TypeState::default();
                        send(answer(shared, config, node, &response, &mut stray, &wildcard).0)?;
                        continue;
                    }
                };
                let (request, accepted) = answer(shared, config, node, &response, state, names);
                // A newer answer supersedes a NACK still held back for this type.
                held[slot] = None;
                if accepted {
                    pacers[slot].on_ack();
                    send(request)?;
                } else if let Some(delay) = pacers[slot].on_nack() {
                    held[slot] = Some((Instant::now() + delay, request));
                } else {
                    send(request)?;
                }
            }
            () = sleep_until_some(next_held) => {
                let now = Instant::now();
                for slot in &mut held {
                    if slot.as_ref().is_some_and(|(at, _)| *at <= now) {
                        let (_, request) = slot.take().expect("checked above");
                        send(request)?;
                    }
                }
            }
            changed = subscriptions.changed() => {
                changed.map_err(|_| "client dropped".to_owned())?;
                names = subscriptions.borrow_and_update().clone();
                send(eds.request(node, ENDPOINT_TYPE_URL, &names, None))?;
            }
        }
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Validates and applies one response; returns its ACK or NACK, and whether it was accepted.
fn answer(
    shared: &Shared,
    config: &XdsConfig,
    node: &Node,
    response: &DiscoveryResponse,
    state: &mut TypeState,
    names: &BTreeSet<String>,
) -> (DiscoveryRequest, bool) {
    let type_url = &response.type_url;
    match ads::decode(response, config.max_endpoints_per_cluster) {
        Ok(update) => {
            let mut loaded = Vec::new();
            let mut clusters = None;
            match update {
                Update::Clusters(names) => clusters = Some(names),
                Update::Endpoints(assignments) => {
                    for (cluster, endpoints) in assignments {
                        // An answer for a cluster nobody asks for any more is dropped.
                        if let Some(handle) = shared.handle(&cluster) {
                            handle.set(endpoints);
                            loaded.push(cluster);
                        }
                    }
                }
            }
            tracing::debug!(%type_url, version = %response.version_info, "xDS update accepted");
            shared.status.send_modify(|s| {
                *s.accepted.entry(type_url.clone()).or_default() += 1;
                s.versions
                    .insert(type_url.clone(), response.version_info.clone());
                s.loaded.extend(loaded);
                if let Some(clusters) = clusters {
                    s.clusters = clusters;
                }
            });
            (state.ack(node, response, names), true)
        }
        Err(error) => {
            tracing::warn!(%type_url, version = %response.version_info, %error,
                "xDS update rejected (NACK); last accepted config kept");
            shared.status.send_modify(|s| {
                *s.nacked.entry(type_url.clone()).or_default() += 1;
                s.last_nack = Some(error.to_string());
            });
            (state.nack(node, response, names, &error), false)
        }
    }
}
