//! What the two ADS stream variants ([`sotw`](crate::sotw), [`delta`](crate::delta)) share: the
//! channel, the request stream, marking a stream open, reading a response, and pacing NACKs.
//!
//! The variants differ in their messages (requests, ACKs, subscriptions) but not in these
//! mechanics; keeping one copy means a fix to NACK pacing reaches both.

use std::pin::Pin;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use futures_core::Stream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint as GrpcEndpoint};

use crate::backoff::{Backoff, NackPacer};
use crate::client::Shared;
use crate::metrics::ConnectedGuard;
use crate::transport::{ControlPlaneConnector, TransportLog, error_chain};
use crate::{CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, XdsConfig};

/// Connects to the control plane (over mutual TLS when [`XdsConfig::tls`] is set), with the
/// response size cap on the decoder. The [`TransportLog`] explains a later stream failure that
/// the TLS layer saw first.
pub(crate) async fn connect(
    endpoint: &GrpcEndpoint,
    config: &XdsConfig,
) -> Result<(AggregatedDiscoveryServiceClient<Channel>, TransportLog), String> {
    let log = TransportLog::default();
    let channel = match &config.tls {
        None => endpoint.connect().await,
        Some(tls) => {
            endpoint
                .connect_with_connector(ControlPlaneConnector::new(tls, log.clone()))
                .await
        }
    }
    .map_err(|e| format!("connect: {}", error_chain(&e)))?;
    let client = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(config.max_response_bytes);
    Ok((client, log))
}

/// The requests of one stream. Unbounded on purpose: we send only in answer to a response or a
/// subscription change, one request each, so the queue is bounded by our own activity.
pub(crate) struct RequestStream<T>(pub(crate) mpsc::UnboundedReceiver<T>);

impl<T> Stream for RequestStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Marks the stream open (status and metrics) until the guard is dropped.
pub(crate) fn opened(shared: &Shared) -> ConnectedGuard<'_> {
    let guard = shared.metrics.connected();
    shared.status.send_modify(|s| {
        s.connected = true;
        s.streams += 1;
    });
    guard
}

/// The next response, or why the stream ended.
pub(crate) fn received<R>(message: Result<Option<R>, tonic::Status>) -> Result<R, String> {
    match message {
        Ok(Some(response)) => Ok(response),
        Ok(None) => Err("closed by the control plane".to_owned()),
        Err(status) => Err(format!("stream failed: {}", error_chain(&status))),
    }
}

/// Which pacing slot a type URL has: 0 = CDS, 1 = EDS, `None` for a type we do not follow.
pub(crate) fn slot(type_url: &str) -> Option<usize> {
    match type_url {
        CLUSTER_TYPE_URL => Some(0),
        ENDPOINT_TYPE_URL => Some(1),
        _ => None,
    }
}

/// Per type URL (CDS, EDS): the NACK pace and a NACK held back by it (see the crate docs,
/// "NACK pacing").
pub(crate) struct Answers<R> {
    pacers: [NackPacer; 2],
    held: [Option<(Instant, R)>; 2],
}

impl<R> Answers<R> {
    pub(crate) fn new(config: &XdsConfig) -> Self {
        let pacer = |salt: u64| {
            let seed = config.seed.map(|seed| seed ^ salt);
            NackPacer::new(Backoff::new(config.backoff_base, config.backoff_max, seed))
        };
        Self {
            pacers: [pacer(1), pacer(2)],
            held: [None, None],
        }
    }

    /// The answer to send now for type `slot`, if not held back. A newer answer supersedes a
    /// NACK still held back for the same type.
    pub(crate) fn answered(&mut self, slot: usize, request: R, accepted: bool) -> Option<R> {
        self.held[slot] = None;
        if accepted {
            self.pacers[slot].on_ack();
            return Some(request);
        }
        match self.pacers[slot].on_nack() {
            Some(delay) => {
                self.held[slot] = Some((Instant::now() + delay, request));
                None
            }
            None => Some(request),
        }
    }

    /// Waits until a held NACK is due (forever when none is held) and takes every due one.
    pub(crate) async fn due(&mut self) -> Vec<R> {
        match self.held.iter().flatten().map(|(at, _)| *at).min() {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
        let now = Instant::now();
        self.held
            .iter_mut()
            .filter(|slot| slot.as_ref().is_some_and(|(at, _)| *at <= now))
            .filter_map(|slot| slot.take().map(|(_, request)| request))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_second_nack_in_a_row_is_held_and_a_newer_answer_supersedes_it() {
        let config = XdsConfig::new("http://x", "n")
            .backoff_base(Duration::from_secs(1))
            .seed(3);
        let mut answers = Answers::new(&config);
        assert_eq!(answers.answered(1, "nack 1", false), Some("nack 1"));
        assert_eq!(answers.answered(1, "nack 2", false), None, "held back");
        let start = Instant::now();
        assert_eq!(answers.due().await, ["nack 2"]);
        assert!(
            start.elapsed() >= Duration::from_millis(800),
            "one jittered backoff step"
        );

        assert_eq!(answers.answered(1, "nack 3", false), None);
        assert_eq!(
            answers.answered(1, "ack 4", true),
            Some("ack 4"),
            "supersedes nack 3"
        );
        let nothing = tokio::time::timeout(Duration::from_secs(600), answers.due()).await;
        assert!(nothing.is_err(), "the superseded NACK is never sent");
        assert_eq!(
            answers.answered(0, "cds nack", false),
            Some("cds nack"),
            "types pace apart"
        );
    }
}
