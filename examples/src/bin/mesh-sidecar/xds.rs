//! The sidecar's xDS control plane: one [`XdsClient`] for every service with
//! `discovery = { xds = "CLUSTER" }`.
//!
//! At start the sidecar waits (at most `[xds] initial_fetch_timeout_ms`) for a CDS answer naming
//! each of those clusters, so that their policies shape the stacks built next; a control plane
//! that is late only costs the policies, never the start. `/ready` stays 503 until every such
//! service has had its first EDS answer: before that its balancer has no endpoint, and a
//! load balancer in front should not send traffic here.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mesh_core::BoxError;
use mesh_examples::config::{Discovery, Service, Xds};
use mesh_examples::stack::xds_resource;
use mesh_tls::TlsConnector;
use mesh_xds::XdsClient;
use opentelemetry::metrics::Meter;

/// The cluster names of the xDS-fed services, in service order.
fn clusters(services: &[Service]) -> BTreeSet<String> {
    services
        .iter()
        .filter_map(|s| match &s.discovery {
            Discovery::Xds { cluster, .. } => Some(cluster.clone()),
            _ => None,
        })
        .collect()
}

/// Connects to the control plane (over mutual TLS with `connector`'s identity when the settings
/// name the control plane's SPIFFE ID) and waits, bounded, for the policies of the services' clusters.
pub(crate) async fn connect(
    settings: &Xds,
    services: &[Service],
    connector: &TlsConnector,
    meter: &Meter,
    seed: u64,
) -> Result<XdsClient, BoxError> {
    let mut config = settings.config.clone().meter(meter.clone()).seed(seed);
    if let Some(server) = &settings.server_identity {
        // The sidecar's own SVID and trust bundles, as for mesh traffic.
        config = config.tls(connector.clone(), server.as_str());
    }
    let client = XdsClient::connect(config).await?;
    let clusters = clusters(services);
    let mut policies = client.policies();
    let named = policies.wait_for(|known| clusters.iter().all(|c| known.contains_key(c)));
    if tokio::time::timeout(settings.initial_fetch_timeout, named)
        .await
        .is_err()
    {
        let known = client.policies().borrow().clone();
        let missing: Vec<_> = clusters
            .iter()
            .filter(|c| !known.contains_key(*c))
            .collect();
        tracing::warn!(?missing, timeout = ?settings.initial_fetch_timeout,
            "xDS: no CDS answer for these clusters yet; their services start on their own settings");
    }
    Ok(client)
}

/// Sets `ready` once every xDS-fed service had its first EDS answer (at once when there is none),
/// unless `stopped` comes first.
pub(crate) fn mark_ready_when_loaded(
    client: &XdsClient,
    services: &[Service],
    ready: Arc<AtomicBool>,
    stopped: impl Future<Output = ()> + Send + 'static,
) {
    let resources: BTreeSet<String> = clusters(services)
        .iter()
        .map(|c| xds_resource(c, client.cluster_policy(c).as_ref()))
        .collect();
    let mut status = client.status();
    tokio::spawn(async move {
        let loaded = status.wait_for(|s| resources.iter().all(|r| s.loaded.contains(r)));
        tokio::select! {
            result = loaded => if result.is_ok() {
                ready.store(true, Ordering::Release);
                tracing::info!(clusters = ?resources, "xDS: every service has endpoints; ready");
            },
            () = stopped => {}
        }
    });
}
