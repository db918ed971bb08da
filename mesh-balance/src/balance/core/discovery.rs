//! Applying the discovery stream to the endpoint set: inserts, updates and removals, and the tier
//! lists they change.

use std::sync::Arc;
use std::task::{Context, Poll};

use mesh_core::{BoxError, Endpoint, EndpointKey};
use tokio::time::Instant;
use tower::discover::{Change, Discover};

use super::{Core, Slot};
use crate::balance::MakeEndpoint;
use crate::balance::endpoint::EndpointState;

/// Discovery changes applied per poll, so a stream that never returns `Pending` cannot starve
/// the caller; the rest are applied on the next poll.
const CHANGES_PER_POLL: usize = 4096;

impl<D, M> Core<D, M>
where
    D: Discover<Key = EndpointKey, Service = Endpoint>,
    D::Error: Into<BoxError>,
    M: MakeEndpoint,
{
    pub(super) fn poll_discover(&mut self, cx: &mut Context<'_>, now: Instant) {
        if self.discover_done {
            return;
        }
        for _ in 0..CHANGES_PER_POLL {
            match self.discover.as_mut().poll_discover(cx) {
                Poll::Pending => return,
                Poll::Ready(None) => {
                    // The set stays as it is: a finished source means "no more changes".
                    self.discover_done = true;
                    return;
                }
                Poll::Ready(Some(Ok(Change::Insert(key, endpoint)))) => {
                    self.insert(key, endpoint, now)
                }
                Poll::Ready(Some(Ok(Change::Remove(key)))) => self.remove(key),
                Poll::Ready(Some(Err(error))) => {
                    let error: BoxError = error.into();
                    tracing::warn!(%error, "discovery failed; keeping the current endpoints");
                }
            }
        }
        // More changes may be waiting; make sure somebody polls again.
        cx.waker().wake_by_ref();
    }

    pub(super) fn insert(&mut self, key: EndpointKey, endpoint: Endpoint, now: Instant) {
        let tier = self.config.locality.tier_of(&endpoint);
        if let Some(&i) = self.index.get(&key) {
            let slot = &mut self.slots[i];
            if slot.endpoint == endpoint {
                return;
            }
            // A changed description keeps the load and health history. The service is rebuilt
            // only when what it may have been built from changed (address, identity, labels);
            // a new weight, locality, priority or draining mark is the balancer's business and
            // keeps it, with its connections and readiness. Requests in flight keep the old
            // service either way (they own their clone).
            let rebuild = needs_new_service(&slot.endpoint, &endpoint);
            let draining = endpoint.is_draining();
            if draining != slot.draining {
                tracing::info!(
                    endpoint = %endpoint.addr(),
                    draining,
                    "discovery: endpoint draining changed"
                );
            }
            slot.state.set_weight(&endpoint);
            if rebuild {
                slot.service = self.make.make_endpoint(&endpoint);
            }
            slot.endpoint = endpoint;
            slot.tier = tier;
            slot.draining = draining;
            if rebuild && std::mem::replace(&mut slot.ready, false) {
                slot.unready_since = Some(now);
                self.unready += 1;
            }
        } else {
            let state = EndpointState::new(
                &endpoint,
                &self.config.load,
                self.tuning.clone(),
                self.outliers.clone(),
                self.reported.metrics().clone(),
                self.tier_in_flight.clone(),
                now,
            );
            tracing::info!(
                endpoint = %endpoint.addr(),
                endpoints = self.slots.len() + 1,
                draining = endpoint.is_draining(),
                "discovery: endpoint added"
            );
            self.slots.push(Slot {
                key,
                draining: endpoint.is_draining(),
                service: self.make.make_endpoint(&endpoint),
                endpoint,
                ready: false,
                unready_since: None,
                tier,
                state: Arc::new(state),
            });
            self.index.insert(key, self.slots.len() - 1);
            self.unready += 1;
        }
        self.topology_changed();
        self.repoll = true;
    }

    pub(super) fn remove(&mut self, key: EndpointKey) {
        let Some(i) = self.index.remove(&key) else {
            return;
        };
        let slot = self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            self.index.insert(moved.key, i);
        }
        if !slot.ready {
            self.unready -= 1;
        }
        // Dropping the slot drops only the balancer's clone of the service; requests in flight
        // own theirs and finish.
        slot.state.health.remove();
        tracing::info!(
            endpoint = %slot.endpoint.addr(),
            endpoints = self.slots.len(),
            "discovery: endpoint removed"
        );
        self.topology_changed();
    }

    pub(super) fn topology_changed(&mut self) {
        self.topology = self.topology.wrapping_add(1);
        self.set_version = self.set_version.wrapping_add(1);
        self.outliers.set_total(self.slots.len());
        for tier in &mut self.tiers {
            tier.clear();
        }
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(t) = slot.tier
                && !slot.draining
            {
                self.tiers[t].push(i);
            }
        }
    }
}

/// Whether an endpoint's service must be rebuilt for its new description: when something a
/// [`MakeEndpoint`] may have built it from changed. Weight, locality, priority and draining only
/// steer the balancer.
fn needs_new_service(old: &Endpoint, new: &Endpoint) -> bool {
    old.addr() != new.addr() || old.identity() != new.identity() || !old.labels().eq(new.labels())
}
