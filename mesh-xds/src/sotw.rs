//! The State-of-the-World ADS stream: one `StreamAggregatedResources` call, from connect to end.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use futures_core::Stream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::transport::Endpoint as GrpcEndpoint;

use crate::ads::{self, TypeState};
use crate::backoff::{Backoff, NackPacer};
use crate::client::{Shared, apply, reject};
use crate::{CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, XdsConfig};

/// The requests of one stream. Unbounded on purpose: we send only in answer to a response or a
/// subscription change, one request each, so the queue is bounded by our own activity.
pub(crate) struct RequestStream<T>(pub(crate) mpsc::UnboundedReceiver<T>);

impl<T> Stream for RequestStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// One ADS stream, from connect to its end; returns why it ended.
pub(crate) async fn stream_once(
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
    let _connected = shared.metrics.connected();
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
pub(crate) async fn sleep_until_some(at: Option<Instant>) {
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
    let (type_url, version) = (&response.type_url, &response.version_info);
    match ads::decode(response, config.max_endpoints_per_cluster) {
        Ok(update) => {
            apply(shared, type_url, version, update, None);
            (state.ack(node, response, names), true)
        }
        Err(error) => {
            reject(shared, type_url, version, &error);
            (state.nack(node, response, names, &error), false)
        }
    }
}
