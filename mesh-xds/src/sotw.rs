//! The State-of-the-World ADS stream: one `StreamAggregatedResources` call, from connect to end.

use std::collections::BTreeSet;
use std::convert::Infallible;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::{mpsc, watch};
use tonic::transport::Endpoint as GrpcEndpoint;

use crate::ads::{self, TypeState};
use crate::backoff::Backoff;
use crate::client::{Shared, apply, reject};
use crate::stream::{self, Answers, RequestStream};
use crate::{CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, XdsConfig};

/// One ADS stream, from connect to its end; returns why it ended.
pub(crate) async fn stream_once(
    shared: &Shared,
    config: &XdsConfig,
    node: &Node,
    endpoint: &GrpcEndpoint,
    subscriptions: &mut watch::Receiver<BTreeSet<String>>,
    backoff: &mut Backoff,
) -> Result<Infallible, String> {
    let (mut client, transport) = stream::connect(endpoint, config).await?;
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
            opened = &mut call => break opened.map_err(|s| transport.explain("open stream", &s))?.into_inner(),
            changed = subscriptions.changed() => {
                changed.map_err(|_| "client dropped".to_owned())?;
                names = subscriptions.borrow_and_update().clone();
                send(eds.request(node, ENDPOINT_TYPE_URL, &names, None))?;
            }
        }
    };
    let _connected = stream::opened(shared);

    let mut answers = Answers::new(config);
    loop {
        tokio::select! {
            message = responses.message() => {
                let response = stream::received(message)?;
                backoff.reset();
                let (slot, state, names) = match stream::slot(&response.type_url) {
                    Some(0) => (0, &mut cds, &wildcard),
                    Some(_) => (1, &mut eds, &names),
                    // Not ours: NACK it at once without touching any state.
                    None => {
                        let mut stray = TypeState::default();
                        send(answer(shared, config, node, &response, &mut stray, &wildcard).0)?;
                        continue;
                    }
                };
                let (request, accepted) = answer(shared, config, node, &response, state, names);
                if let Some(request) = answers.answered(slot, request, accepted) {
                    send(request)?;
                }
            }
            due = answers.due() => {
                for request in due {
                    send(request)?;
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
