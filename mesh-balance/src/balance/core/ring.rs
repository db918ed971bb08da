//! The consistent-hash pick: the ring over the endpoint set, built outside the lock, and the
//! bounded-load walk within the reserved endpoint's tier.

use std::task::Context;

use mesh_core::{BoxError, Endpoint, EndpointKey};
use tokio::time::Instant;
use tower::discover::Discover;
use tower_service::Service;

use super::{Core, Picked, Slot};
use crate::balance::MakeEndpoint;
use crate::eject::Admission;
use crate::hash::{HashRing, LoadView, RingConfig};

impl<D, M> Core<D, M>
where
    D: Discover<Key = EndpointKey, Service = Endpoint>,
    D::Error: Into<BoxError>,
    M: MakeEndpoint,
{
    /// Hash mode: the inputs for a ring over the current set, when the ring is out of date and
    /// no other caller is building one. The caller builds it *without* the lock (a ring of 1000
    /// endpoints takes milliseconds) and hands it to [`install_ring`](Self::install_ring).
    pub(crate) fn ring_job(&mut self) -> Option<RingJob> {
        let config = self.ring_config.as_ref()?;
        if self.ring_version == self.set_version || self.ring_building {
            return None;
        }
        self.ring_building = true;
        // Draining endpoints leave the ring: their keys move to the next endpoints clockwise.
        let slots: Vec<usize> = (0..self.slots.len())
            .filter(|&i| !self.slots[i].draining)
            .collect();
        Some(RingJob {
            endpoints: (slots.iter())
                .map(|&i| (self.slots[i].key, self.slots[i].endpoint.weight()))
                .collect(),
            slots,
            config: config.clone(),
            version: self.set_version,
        })
    }

    /// Installs a ring built from a [`RingJob`]; it is used only while the set is still the one it
    /// was built for (otherwise the next hashed request builds another).
    pub(crate) fn install_ring(&mut self, ring: HashRing, job: RingJob) {
        self.ring_building = false;
        self.ring = Some(ring);
        self.ring_slots = job.slots;
        self.ring_version = job.version;
    }

    /// Hash mode: the endpoint of `hash` on the ring, within the tier `reserved` was picked in,
    /// under bounded load by requests in flight; ejected, unready and out-of-tier endpoints are
    /// walked past. `None`: keep `reserved` (it is the ring's choice, or nothing else is
    /// eligible and ready). Polls the chosen service once, with the shared waker; one that is not
    /// ready is marked unready and the walk goes on, so this never waits.
    pub(crate) fn pick_hashed<Req>(
        &mut self,
        hash: u64,
        reserved: &Picked<M::Service>,
        cx: &mut Context<'_>,
        now: Instant,
    ) -> Option<Picked<M::Service>>
    where
        M::Service: Service<Req> + Clone,
        <M::Service as Service<Req>>::Error: Into<BoxError>,
    {
        if self.ring_version != self.set_version {
            // Being rebuilt by another caller (or the set changed while this caller built it):
            // slot indexes may not match the ring's, so keep the balanced pick for now.
            return None;
        }
        let tier = reserved.tier;
        self.refresh_loads();
        // Every failed attempt makes one endpoint ineligible, so this ends; the bound is a guard.
        for _ in 0..=self.tiers[tier].len() + 1 {
            let view = RingView::new(self, tier, reserved.key, now);
            let i = self.ring_slots[self.ring.as_ref()?.pick(hash, &view)?];
            let slot = &self.slots[i];
            if slot.key == reserved.key {
                return None;
            }
            let admission = self.admission(i, now);
            if let Some(picked) = self.take::<Req>(i, admission, tier, cx, now) {
                return Some(picked);
            }
        }
        None
    }
}

/// What building a ring needs, taken out of the lock; see [`Core::ring_job`].
#[derive(Debug)]
pub(crate) struct RingJob {
    endpoints: Vec<(EndpointKey, mesh_core::Weight)>,
    /// The slot index of each ring index.
    slots: Vec<usize>,
    config: RingConfig,
    pub(crate) version: u64,
}

impl RingJob {
    pub(crate) fn build(&self) -> HashRing {
        HashRing::with_config(&self.endpoints, &self.config)
    }
}

/// The ring's view of one tier: in-flight requests as the load, and which endpoints may take a
/// hashed request. The reserved endpoint counts as eligible (it is ready and was admitted, its
/// probe perhaps claimed already).
///
/// The totals bounded load needs are kept, not computed, so a hashed pick costs no scan of the
/// tier: in-flight by the tickets (all the tier's requests, including those still finishing on an
/// endpoint that has left rotation since) and the weight in rotation as of the last
/// readiness or ejection change. Both can be slightly off for a moment; that only moves a
/// capacity by a fraction of a request, and the walk still ends at an eligible endpoint.
struct RingView<'a, S> {
    slots: &'a [Slot<S>],
    /// Ring index → slot index.
    ring_slots: &'a [usize],
    tier: usize,
    reserved: EndpointKey,
    panic: bool,
    now: Instant,
    total: u64,
    weight: u64,
}

impl<'a, S> RingView<'a, S> {
    fn new<D, M>(core: &'a Core<D, M>, tier: usize, reserved: EndpointKey, now: Instant) -> Self
    where
        M: MakeEndpoint<Service = S>,
    {
        let total = (core.tier_in_flight.as_ref()).map_or(0, |counts| {
            counts[tier].load(std::sync::atomic::Ordering::Relaxed)
        });
        Self {
            slots: &core.slots,
            ring_slots: &core.ring_slots,
            tier,
            reserved,
            panic: core.panic,
            now,
            total,
            weight: core.tier_weight[tier].max(1),
        }
    }
}

impl<S> LoadView for RingView<'_, S> {
    fn load(&self, index: usize) -> u64 {
        u64::from(self.slots[self.ring_slots[index]].state.load.pending())
    }

    fn total(&self) -> u64 {
        self.total
    }

    fn eligible(&self, index: usize) -> bool {
        let slot = &self.slots[self.ring_slots[index]];
        !slot.draining
            && slot.tier == Some(self.tier)
            && (slot.key == self.reserved
                || (slot.ready
                    && (self.panic || slot.state.health.admission(self.now) != Admission::Closed)))
    }

    fn eligible_weight(&self) -> Option<u64> {
        Some(self.weight)
    }
}
