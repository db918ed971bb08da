//! The Delta (incremental) ADS stream: one `DeltaAggregatedResources` call, from connect to end.
//!
//! Differences from State-of-the-World that matter here:
//!
//! - subscriptions are changes (`resource_names_subscribe` / `_unsubscribe`), not the full list;
//!   CDS is subscribed as a wildcard by a first request that names nothing;
//! - an ACK is just the response's nonce; a NACK adds `error_detail`; there is no version to echo
//!   (`system_version_info` is for debugging, and is what [`XdsStatus::versions`] shows);
//! - a response carries only changed resources plus the names of removed ones. A removed cluster
//!   leaves the CDS set. A removed endpoint assignment keeps its last endpoints (logged): the
//!   cluster's removal from CDS is what retires it, and a control plane that lost its state must
//!   not empty the data plane.
//!
//! A new stream subscribes afresh without `initial_resource_versions`, so the control plane sends
//! everything again and the diffing handles make the repeat a no-op.
//!
//! [`XdsStatus::versions`]: crate::XdsStatus::versions

use std::collections::BTreeSet;
use std::convert::Infallible;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status;
use tokio::sync::{mpsc, watch};
use tonic::transport::Endpoint as GrpcEndpoint;

use crate::ads;
use crate::backoff::Backoff;
use crate::client::{Shared, apply, reject};
use crate::stream::{self, Answers, RequestStream};
use crate::{CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, InvalidResource, XdsConfig};

/// `google.rpc.Code.INVALID_ARGUMENT`, the code of every NACK we send.
const INVALID_ARGUMENT: i32 = 3;

/// A subscription change (or, with nothing named, the first request of a wildcard type).
fn subscribe(
    node: &Node,
    type_url: &str,
    subscribe: impl IntoIterator<Item = String>,
    unsubscribe: impl IntoIterator<Item = String>,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: Some(node.clone()),
        type_url: type_url.to_owned(),
        resource_names_subscribe: subscribe.into_iter().collect(),
        resource_names_unsubscribe: unsubscribe.into_iter().collect(),
        ..Default::default()
    }
}

/// The ACK (no error) or NACK (`error`) of `response`.
fn answer_request(
    node: &Node,
    response: &DeltaDiscoveryResponse,
    error: Option<&InvalidResource>,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: Some(node.clone()),
        type_url: response.type_url.clone(),
        response_nonce: response.nonce.clone(),
        error_detail: error.map(|error| Status {
            code: INVALID_ARGUMENT,
            message: error.to_string(),
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

/// Validates and applies one response; returns its ACK or NACK, and whether it was accepted.
fn answer(
    shared: &Shared,
    config: &XdsConfig,
    node: &Node,
    response: &DeltaDiscoveryResponse,
) -> (DeltaDiscoveryRequest, bool) {
    let (type_url, version) = (&response.type_url, &response.system_version_info);
    let resources = response
        .resources
        .iter()
        .filter_map(|r| r.resource.as_ref());
    match ads::decode_resources(type_url, resources, config.max_endpoints_per_cluster) {
        Ok(update) => {
            let removed = &response.removed_resources;
            if type_url == ENDPOINT_TYPE_URL {
                if !removed.is_empty() {
                    tracing::info!(clusters = ?removed,
                        "xDS removed endpoint assignments; their last endpoints are kept");
                }
                apply(shared, type_url, version, update, None);
            } else {
                apply(shared, type_url, version, update, Some(removed));
            }
            (answer_request(node, response, None), true)
        }
        Err(error) => {
            reject(shared, type_url, version, &error);
            (answer_request(node, response, Some(&error)), false)
        }
    }
}

/// One Delta ADS stream, from connect to its end; returns why it ended.
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

    send(subscribe(node, CLUSTER_TYPE_URL, [], []))?;
    let mut subscribed = subscriptions.borrow_and_update().clone();
    if !subscribed.is_empty() {
        send(subscribe(node, ENDPOINT_TYPE_URL, subscribed.clone(), []))?;
    }
    // Sends the difference between what this stream subscribed and what is wanted now.
    let resubscribe =
        |subscribed: &mut BTreeSet<String>, wanted: BTreeSet<String>| -> Result<(), String> {
            let added: Vec<String> = wanted.difference(subscribed).cloned().collect();
            let removed: Vec<String> = subscribed.difference(&wanted).cloned().collect();
            *subscribed = wanted;
            if added.is_empty() && removed.is_empty() {
                return Ok(());
            }
            send(subscribe(node, ENDPOINT_TYPE_URL, added, removed))
        };

    let call = client.delta_aggregated_resources(RequestStream(rx));
    tokio::pin!(call);
    let mut responses = loop {
        tokio::select! {
            opened = &mut call => break opened.map_err(|s| transport.explain("open stream", &s))?.into_inner(),
            changed = subscriptions.changed() => {
                changed.map_err(|_| "client dropped".to_owned())?;
                resubscribe(&mut subscribed, subscriptions.borrow_and_update().clone())?;
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
                let Some(slot) = stream::slot(&response.type_url) else {
                    // Not ours: NACK it at once.
                    send(answer(shared, config, node, &response).0)?;
                    continue;
                };
                let (request, accepted) = answer(shared, config, node, &response);
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
                resubscribe(&mut subscribed, subscriptions.borrow_and_update().clone())?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_is_the_nonce_and_nack_adds_error_detail() {
        let node = ads::node(&XdsConfig::new("http://x", "n"));
        let response = DeltaDiscoveryResponse {
            system_version_info: "7".into(),
            type_url: ENDPOINT_TYPE_URL.into(),
            nonce: "abc".into(),
            ..Default::default()
        };
        let ack = answer_request(&node, &response, None);
        assert_eq!(ack.response_nonce, "abc");
        assert_eq!(ack.type_url, ENDPOINT_TYPE_URL);
        assert!(ack.error_detail.is_none() && ack.resource_names_subscribe.is_empty());

        let error = InvalidResource::DuplicateCluster {
            cluster: "orders".into(),
        };
        let nack = answer_request(&node, &response, Some(&error));
        assert_eq!(nack.response_nonce, "abc");
        let detail = nack.error_detail.unwrap();
        assert_eq!(detail.code, INVALID_ARGUMENT);
        assert_eq!(detail.message, error.to_string());
    }

    #[test]
    fn subscription_changes_name_only_the_difference() {
        let node = ads::node(&XdsConfig::new("http://x", "n"));
        let request = subscribe(&node, ENDPOINT_TYPE_URL, ["b".to_owned()], ["a".to_owned()]);
        assert_eq!(request.resource_names_subscribe, ["b"]);
        assert_eq!(request.resource_names_unsubscribe, ["a"]);
        assert!(request.response_nonce.is_empty());
        let wildcard = subscribe(&node, CLUSTER_TYPE_URL, [], []);
        assert!(wildcard.resource_names_subscribe.is_empty());
    }
}
