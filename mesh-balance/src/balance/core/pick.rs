//! The balanced pick: a locality tier drawn by its load, then power of two choices (or round
//! robin) among the tier's eligible endpoints, and the pick of an untried endpoint for a retry.

use std::task::{Context, Poll};

use mesh_core::attempts::TriedKeys;
use mesh_core::{BoxError, Endpoint, EndpointKey};
use tokio::time::Instant;
use tower::discover::Discover;
use tower_service::Service;

use super::{Core, Picked, Slot};
use crate::balance::MakeEndpoint;
use crate::balance::endpoint::EndpointTicket;
use crate::eject::Admission;
use crate::load::LoadStrategy;
use crate::locality::TIERS;
use crate::metrics::route;

/// Random draws tried before a linear scan, when sampled endpoints turn out not eligible.
const SAMPLE_TRIES: usize = 8;

impl<D, M> Core<D, M>
where
    D: Discover<Key = EndpointKey, Service = Endpoint>,
    D::Error: Into<BoxError>,
    M: MakeEndpoint,
{
    /// Picks a ready endpoint, or returns `None` when none is; see the module docs.
    pub(crate) fn poll_pick<Req>(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
    ) -> Option<Picked<M::Service>>
    where
        M::Service: Service<Req> + Clone,
        <M::Service as Service<Req>>::Error: Into<BoxError>,
    {
        self.poll_discover(cx, now);
        if self.waiters.take_dirty() | std::mem::take(&mut self.repoll) {
            self.repoll_unready::<Req>(cx, now);
        }
        let mut picked = self.try_pick::<Req>(cx, now);
        if picked.is_none() {
            self.repoll_unready::<Req>(cx, now);
            picked = self.try_pick::<Req>(cx, now);
        }
        match picked {
            Some(_) => self.unready_since = None,
            None => self.arm_ejection_expiry(cx),
        }
        picked
    }

    pub(super) fn try_pick<Req>(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
    ) -> Option<Picked<M::Service>>
    where
        M::Service: Service<Req> + Clone,
        <M::Service as Service<Req>>::Error: Into<BoxError>,
    {
        self.refresh_loads();
        if self.dormant_probe_at.is_some_and(|at| at <= now)
            && let Some(picked) = self.pick_dormant_probe::<Req>(cx, now)
        {
            return Some(picked);
        }
        let first = self.draw_tier()?;
        if let Some(picked) = self.pick_in_tier::<Req>(first, cx, now) {
            return Some(picked);
        }
        if self.config.locality.strict {
            return None;
        }
        // The drawn tier has nothing ready: any ready endpoint beats waiting.
        (0..TIERS)
            .filter(|&t| t != first)
            .find_map(|t| self.pick_in_tier::<Req>(t, cx, now))
    }

    /// The probe of an ejected endpoint in a tier that gets no traffic, whose ejection is over.
    /// Tiers are drawn by their healthy share, so a tier whose every endpoint is ejected is never
    /// drawn, and without this its endpoints would never be probed: a failed-over priority or
    /// zone would never come back. Runs only once such a probe is due (one scan of the set),
    /// and moves `dormant_probe_at` to the next one when none is due now.
    fn pick_dormant_probe<Req>(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
    ) -> Option<Picked<M::Service>>
    where
        M::Service: Service<Req> + Clone,
        <M::Service as Service<Req>>::Error: Into<BoxError>,
    {
        let mut next = None::<Instant>;
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            let Some(tier) = slot.tier else { continue };
            if !slot.ready || slot.draining || self.loads[tier] != 0.0 {
                continue;
            }
            let Some(until) = slot.state.health.ejected_until() else {
                continue;
            };
            if until > now {
                next = Some(next.map_or(until, |n| n.min(until)));
                continue;
            }
            if self.slots[i].state.health.admission(now) == Admission::Probe
                && let Some(picked) = self.take::<Req>(i, Admission::Probe, tier, cx, now)
            {
                return Some(picked);
            }
        }
        self.dormant_probe_at = next;
        None
    }

    pub(super) fn draw_tier(&mut self) -> Option<usize> {
        let loads = self.loads;
        if let Some(t) = loads.iter().position(|&l| l >= 1.0) {
            return Some(t);
        }
        let last = loads.iter().rposition(|&l| l > 0.0)?;
        let mut draw = self.rng.f64();
        for (t, &load) in loads.iter().enumerate().take(last) {
            if draw < load {
                return Some(t);
            }
            draw -= load;
        }
        Some(last)
    }

    pub(super) fn pick_in_tier<Req>(
        &mut self,
        tier: usize,
        cx: &mut Context<'_>,
        now: Instant,
    ) -> Option<Picked<M::Service>>
    where
        M::Service: Service<Req> + Clone,
        <M::Service as Service<Req>>::Error: Into<BoxError>,
    {
        // Every failed attempt marks one endpoint unready, so this ends; the bound is a guard.
        for _ in 0..=self.tiers[tier].len() + 1 {
            let (i, admission) = match self.config.load {
                LoadStrategy::RoundRobin => self.next_in_turn(tier, now)?,
                _ => self.power_of_two(tier, now, None)?,
            };
            if let Some(picked) = self.take::<Req>(i, admission, tier, cx, now) {
                return Some(picked);
            }
        }
        None
    }

    /// Takes slot `i` (picked in `tier` with `admission`) for one request: claims its probe if it
    /// is due one, polls its service once with the shared waker and, when ready, hands out the
    /// service that was polled ready, keeping a fresh clone (polled before its own first use).
    /// `None` when the probe was taken by another caller or the service is not ready (then marked
    /// unready, or rebuilt after an error): the caller picks again.
    pub(super) fn take<Req>(
        &mut self,
        i: usize,
        admission: Admission,
        tier: usize,
        cx: &mut Context<'_>,
        now: Instant,
    ) -> Option<Picked<M::Service>>
    where
        M::Service: Service<Req> + Clone,
        <M::Service as Service<Req>>::Error: Into<BoxError>,
    {
        let probe = admission == Admission::Probe;
        let route = route(tier, tier != self.best, self.by_priority());
        let slot = &mut self.slots[i];
        if probe && !slot.state.health.claim_probe(now) {
            return None;
        }
        let ticket = EndpointTicket::new(slot.state.clone(), probe, route);
        match slot.service.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                let fresh = slot.service.clone();
                let service = std::mem::replace(&mut slot.service, fresh);
                let key = slot.key;
                Some(Picked {
                    service,
                    ticket,
                    key,
                    tier,
                })
            }
            Poll::Pending => {
                self.mark_unready(i, now);
                None
            }
            Poll::Ready(Err(error)) => {
                self.rebuild(i, error.into(), now);
                None
            }
        }
        // On `None`, `ticket` is dropped and gives a claimed probe back.
    }

    /// Power of two choices: two distinct eligible endpoints at random, the cheaper wins; an
    /// endpoint due for its probe wins outright, so probes are not starved by stale costs.
    /// With `avoid`, endpoints it names are not drawn.
    pub(super) fn power_of_two(
        &mut self,
        tier: usize,
        now: Instant,
        avoid: Option<&TriedKeys>,
    ) -> Option<(usize, Admission)> {
        let a = self.sample(tier, None, avoid, now)?;
        let Some(b) = self.sample(tier, Some(a.0), avoid, now) else {
            return Some(a);
        };
        if a.1 == Admission::Probe {
            return Some(a);
        }
        if b.1 == Admission::Probe {
            return Some(b);
        }
        let (strategy, slow_start) = (&self.config.load, &self.config.slow_start);
        let cost = |i: usize| self.slots[i].state.cost(strategy, slow_start, now);
        Some(if cost(b.0) < cost(a.0) { b } else { a })
    }

    pub(super) fn next_in_turn(&mut self, tier: usize, now: Instant) -> Option<(usize, Admission)> {
        let n = self.tiers[tier].len();
        for k in 0..n {
            let i = self.tiers[tier][(self.cursor + k) % n];
            if let Some(admission) = self.eligible(i, now) {
                self.cursor = (self.cursor + k + 1) % n;
                return Some((i, admission));
            }
        }
        None
    }

    /// A uniformly drawn eligible endpoint of `tier` other than `except`. A few random draws, then
    /// a scan from a random start (slightly biased, and only when most endpoints are ineligible).
    pub(super) fn sample(
        &mut self,
        tier: usize,
        except: Option<usize>,
        avoid: Option<&TriedKeys>,
        now: Instant,
    ) -> Option<(usize, Admission)> {
        let n = self.tiers[tier].len();
        if n == 0 {
            return None;
        }
        let allowed = |slots: &[Slot<M::Service>], i: usize| {
            Some(i) != except && avoid.is_none_or(|tried| !tried.contains(&slots[i].key))
        };
        if n == 1 {
            // The only candidate: no draw (P2C's second draw of a one-endpoint tier, the usual
            // case of a service with one endpoint, would otherwise spend every try on it).
            let i = self.tiers[tier][0];
            return allowed(&self.slots, i)
                .then(|| self.eligible(i, now).map(|a| (i, a)))
                .flatten();
        }
        for _ in 0..SAMPLE_TRIES {
            let i = self.tiers[tier][self.rng.usize(..n)];
            if allowed(&self.slots, i)
                && let Some(admission) = self.eligible(i, now)
            {
                return Some((i, admission));
            }
        }
        let start = self.rng.usize(..n);
        (0..n)
            .map(|k| self.tiers[tier][(start + k) % n])
            .filter(|&i| allowed(&self.slots, i))
            .find_map(|i| self.eligible(i, now).map(|a| (i, a)))
    }

    /// An endpoint the request has not tried, for a request whose reserved endpoint it has: P2C
    /// among the untried eligible endpoints of the reserved endpoint's tier, then (unless
    /// locality is strict) of the other tiers, best first. `None`: keep `reserved` (nothing
    /// untried is eligible and ready). Never waits: each candidate's service is polled once.
    pub(crate) fn pick_untried<Req>(
        &mut self,
        tried: &TriedKeys,
        reserved: &Picked<M::Service>,
        cx: &mut Context<'_>,
        now: Instant,
    ) -> Option<Picked<M::Service>>
    where
        M::Service: Service<Req> + Clone,
        <M::Service as Service<Req>>::Error: Into<BoxError>,
    {
        self.refresh_loads();
        let strict = self.config.locality.strict;
        let tiers = std::iter::once(reserved.tier)
            .chain((0..TIERS).filter(|&t| !strict && t != reserved.tier));
        for tier in tiers {
            // Every failed attempt makes one endpoint ineligible, so this ends; the bound is a
            // guard.
            for _ in 0..=self.tiers[tier].len() + 1 {
                let Some((i, admission)) = self.power_of_two(tier, now, Some(tried)) else {
                    break;
                };
                if let Some(picked) = self.take::<Req>(i, admission, tier, cx, now) {
                    return Some(picked);
                }
            }
        }
        None
    }
}
