//! Readiness of the endpoint services, and what follows from it: which endpoints are in rotation,
//! panic mode, the load of each locality tier, and the wake-up when an ejection ends.

use std::task::{Context, Poll};

use mesh_core::classify::{ErrorKind, FailureClass, Outcome};
use mesh_core::{BoxError, Endpoint, EndpointKey};
use tokio::time::Instant;
use tower::discover::Discover;
use tower_service::Service;

use super::Core;
use crate::balance::MakeEndpoint;
use crate::locality::{TIERS, TierHealth, tier_loads};
use crate::metrics::EndpointCount;

impl<D, M> Core<D, M>
where
    D: Discover<Key = EndpointKey, Service = Endpoint>,
    D::Error: Into<BoxError>,
    M: MakeEndpoint,
{
    /// Recomputes panic mode and tier loads when readiness, the set or an ejection changed.
    pub(super) fn refresh_loads(&mut self) {
        let key = (self.topology, self.outliers.generation());
        if key == self.seen {
            return;
        }
        self.seen = key;
        let (mut healthy, mut total) = (0usize, 0usize);
        let mut ready = [TierHealth::default(); TIERS];
        let mut in_rotation = [TierHealth::default(); TIERS];
        let mut counts = [0i64; 4];
        let (mut ready_weight, mut rotation_weight) = ([0u64; TIERS], [0u64; TIERS]);
        for slot in &self.slots {
            let state = match (slot.draining, slot.state.health.is_ejected(), slot.ready) {
                (true, _, _) => EndpointCount::Draining,
                (false, true, _) => EndpointCount::Ejected,
                (false, false, true) => EndpointCount::Ready,
                (false, false, false) => EndpointCount::Unready,
            };
            counts[state as usize] += 1;
            // A draining endpoint is leaving: it counts toward neither its tier's health nor
            // panic mode, whose shares are of the endpoints that may take requests.
            if slot.draining {
                continue;
            }
            let Some(t) = slot.tier else { continue };
            total += 1;
            ready[t].total += 1;
            in_rotation[t].total += 1;
            if slot.ready {
                let weight = u64::from(slot.endpoint.weight().get());
                ready[t].healthy += 1;
                ready_weight[t] += weight;
                if !slot.state.health.is_ejected() {
                    in_rotation[t].healthy += 1;
                    rotation_weight[t] += weight;
                    healthy += 1;
                }
            }
        }
        let outliers = &self.config.outliers;
        self.panic = outliers.enabled
            && total > 0
            && (healthy as f64) < outliers.panic_threshold * total as f64;
        self.reported.endpoints(counts);
        self.reported.panic(self.panic);
        let tiers = if self.panic { &ready } else { &in_rotation };
        self.tier_weight = if self.panic {
            ready_weight
        } else {
            rotation_weight
        };
        self.best = tiers.iter().position(|t| t.total > 0).unwrap_or(0);
        let locality = &self.config.locality;
        self.loads = tier_loads(tiers, locality.threshold, locality.strict);
        let loads = self.loads;
        self.dormant_probe_at = (self.slots.iter())
            .filter(|slot| slot.ready && !slot.draining)
            .filter(|slot| slot.tier.is_some_and(|t| loads[t] == 0.0))
            .filter_map(|slot| slot.state.health.ejected_until())
            .min();
    }

    /// Schedules a wake-up of every waiting caller for when the earliest ejection of a ready
    /// endpoint ends, since the endpoint may then take its probe. Only on the no-pick path: the
    /// timer is allocated once and reset afterwards.
    pub(super) fn arm_ejection_expiry(&mut self, cx: &mut Context<'_>) {
        let next = self
            .slots
            .iter()
            .filter(|slot| slot.ready && slot.tier.is_some() && !slot.draining)
            .filter_map(|slot| slot.state.health.ejected_until())
            .min();
        let Some(next) = next else { return };
        let sleep = self
            .expiry
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next)));
        if sleep.deadline() != next {
            sleep.as_mut().reset(next);
        }
        // Ready at once only if the expiry passed already, which the pick has just seen.
        let _ = sleep.as_mut().poll(cx);
    }

    /// Polls every endpoint not known to be ready; wakes all waiters when one became ready, since
    /// its own wake-up may have been consumed by the caller now polling.
    pub(super) fn repoll_unready<Req>(&mut self, cx: &mut Context<'_>, now: Instant)
    where
        M::Service: Service<Req>,
        <M::Service as Service<Req>>::Error: Into<BoxError>,
    {
        if self.unready == 0 {
            return;
        }
        let mut woke = false;
        for i in 0..self.slots.len() {
            if self.slots[i].ready {
                continue;
            }
            match self.slots[i].service.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let slot = &mut self.slots[i];
                    slot.ready = true;
                    if let Some(since) = slot.unready_since.take() {
                        // Back from a spell out of rotation (failed health checks, say): cold
                        // if it was long.
                        slot.state
                            .back_in_rotation(now.saturating_duration_since(since), now);
                    }
                    self.unready -= 1;
                    woke = true;
                }
                Poll::Pending => {}
                Poll::Ready(Err(error)) => self.rebuild(i, error.into(), now),
            }
        }
        if woke {
            self.topology = self.topology.wrapping_add(1);
            self.waiters.wake_all();
        }
    }

    /// Replaces an endpoint service whose readiness failed, instead of dropping the endpoint as
    /// tower does; the failure feeds the outlier gate like a failed request. The new service is
    /// polled on the next poll.
    pub(super) fn rebuild(&mut self, i: usize, error: BoxError, now: Instant) {
        let slot = &mut self.slots[i];
        tracing::debug!(endpoint = %slot.key, %error, "endpoint service failed; rebuilding it");
        slot.service = self.make.make_endpoint(&slot.endpoint);
        let failure = Outcome::Failure(FailureClass::Error(ErrorKind::of_dyn(&*error)));
        slot.state.health.record(Some(&failure), false, now);
        self.mark_unready(i, now);
        // Never polled, so it holds no waker: have the next poll look at it. (Not through the
        // waiters' dirty flag, which would make a waiting caller spin on a factory whose
        // services always fail.)
        self.repoll = true;
    }

    pub(super) fn mark_unready(&mut self, i: usize, now: Instant) {
        let slot = &mut self.slots[i];
        if std::mem::replace(&mut slot.ready, false) {
            slot.unready_since = Some(now);
            self.unready += 1;
            self.topology = self.topology.wrapping_add(1);
        }
    }
}
