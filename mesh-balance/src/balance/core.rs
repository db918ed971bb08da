//! The balancer's shared state: the endpoint set, discovery, and the pick.
//!
//! Everything here runs under the balancer's mutex, in short, non-blocking sections: polling the
//! discovery stream, polling endpoint services for readiness, and sampling. Outcomes are recorded
//! outside it, into each endpoint's own [`EndpointState`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use mesh_core::attempts::TriedEndpoints;
use mesh_core::classify::{ErrorKind, FailureClass, Outcome};
use mesh_core::{BoxError, Endpoint, EndpointKey};
use tokio::time::{Instant, Sleep};
use tower::discover::{Change, Discover};
use tower_service::Service;

use super::endpoint::{EndpointState, EndpointTicket, TierInFlight};
use super::waiters::Waiters;
use super::{BalanceConfig, BalanceStatus, MakeEndpoint};
use crate::eject::{Admission, OutlierShared};
use crate::hash::{HashRing, LoadView, RingConfig};
use crate::load::LoadStrategy;
use crate::locality::{TIERS, TierHealth, tier_loads};
use crate::metrics::{BalanceMetrics, EndpointCount, ReportedCounts, route};

/// Discovery changes applied per poll, so a stream that never returns `Pending` cannot starve
/// the caller; the rest are applied on the next poll.
const CHANGES_PER_POLL: usize = 4096;

/// Random draws tried before a linear scan, when sampled endpoints turn out not eligible.
const SAMPLE_TRIES: usize = 8;

/// A ready endpoint service taken out of the set for one request, with the ticket the request
/// reports through.
#[derive(Debug)]
pub(crate) struct Picked<S> {
    pub(crate) service: S,
    pub(crate) ticket: EndpointTicket,
    /// The endpoint, and the locality tier it was picked in: hashing stays in that tier.
    pub(crate) key: EndpointKey,
    pub(crate) tier: usize,
}

#[derive(Debug)]
struct Slot<S> {
    key: EndpointKey,
    endpoint: Endpoint,
    service: S,
    /// `false` once `poll_ready` returned `Pending` (or before the first poll): skipped by the pick
    /// and re-polled when the set is woken. `true` does not mean polled: the slot's service is a
    /// fresh clone after every pick, and is polled when picked.
    ready: bool,
    /// When a poll last found the service not ready, while `ready` is false (`None` for a new
    /// endpoint): the length of the spell decides whether it comes back cold (slow start).
    unready_since: Option<Instant>,
    /// `None`: outside the allowed failover regions, never used.
    tier: Option<usize>,
    state: Arc<EndpointState>,
}

pub(crate) struct Core<D, M: MakeEndpoint> {
    discover: Pin<Box<D>>,
    discover_done: bool,
    make: M,
    slots: Vec<Slot<M::Service>>,
    index: HashMap<EndpointKey, usize>,
    tiers: [Vec<usize>; TIERS],
    loads: [f64; TIERS],
    /// The best non-empty tier; requests sent elsewhere count as spilled over.
    best: usize,
    panic: bool,
    /// `(topology, outlier generation)` the tier loads were computed at.
    seen: (u64, u64),
    topology: u64,
    unready: usize,
    /// Unready slots hold a service never polled (new or rebuilt): poll them next time.
    repoll: bool,
    /// Since when no pick has succeeded; cleared by every successful pick.
    pub(crate) unready_since: Option<Instant>,
    rng: fastrand::Rng,
    cursor: usize,
    config: BalanceConfig,
    outliers: Arc<OutlierShared>,
    waiters: Arc<Waiters>,
    /// Fires at the earliest ejection expiry while callers wait, through the shared waker: an
    /// ejected endpoint becoming probe-able is a change nothing else would wake them for.
    expiry: Option<Pin<Box<Sleep>>>,
    reported: ReportedCounts,
    /// Hash mode only: the ring over `slots` (ring index = slot index) as of set version
    /// `ring_version`, rebuilt outside the lock by the first hashed request after the set changed
    /// (see [`RingJob`]).
    /// hashed request after the set changed.
    ring: Option<HashRing>,
    ring_config: Option<RingConfig>,
    ring_version: u64,
    /// Bumped by every change of the endpoint set (insert, update, removal).
    set_version: u64,
    /// A caller is building the ring for the current set: others do not start another.
    ring_building: bool,
    /// Hash mode only: requests in flight per tier, kept by the tickets.
    tier_in_flight: Option<Arc<TierInFlight>>,
    /// Summed weight of the endpoints in rotation (panic: ready) per tier, as of the last
    /// `refresh_loads`: the `Σw` bounded load shares capacity over.
    tier_weight: [u64; TIERS],
}

impl<D, M: MakeEndpoint> std::fmt::Debug for Core<D, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("endpoints", &self.slots.len())
            .field("unready", &self.unready)
            .field("panic", &self.panic)
            .finish_non_exhaustive()
    }
}

impl<D, M> Core<D, M>
where
    D: Discover<Key = EndpointKey, Service = Endpoint>,
    D::Error: Into<BoxError>,
    M: MakeEndpoint,
{
    pub(crate) fn new(discover: D, make: M, config: BalanceConfig, waiters: Arc<Waiters>) -> Self {
        let seed = config.seed.unwrap_or_else(|| fastrand::Rng::new().u64(..));
        // A distinct stream for ejection jitter, so outcomes recorded from other threads do not
        // shift the sampling sequence.
        let metrics = BalanceMetrics::new(config.meter.as_ref());
        let outliers = Arc::new(OutlierShared::new(
            config.outliers,
            seed ^ 0x9e37_79b9_7f4a_7c15,
            metrics.clone(),
            Waker::from(waiters.clone()),
        ));
        let ring_config = config.hash.as_ref().map(|h| h.ring.clone());
        Self {
            discover: Box::pin(discover),
            discover_done: false,
            make,
            slots: Vec::new(),
            index: HashMap::new(),
            tiers: Default::default(),
            loads: [0.0; TIERS],
            best: 0,
            panic: false,
            seen: (u64::MAX, u64::MAX),
            topology: 0,
            unready: 0,
            repoll: false,
            unready_since: None,
            rng: fastrand::Rng::with_seed(seed),
            cursor: 0,
            config,
            outliers,
            waiters,
            expiry: None,
            reported: ReportedCounts::new(metrics),
            ring: None,
            tier_in_flight: ring_config.as_ref().map(|_| Arc::new(Default::default())),
            ring_config,
            ring_version: u64::MAX,
            set_version: 0,
            ring_building: false,
            tier_weight: [0; TIERS],
        }
    }

    pub(crate) fn status(&self) -> BalanceStatus {
        BalanceStatus {
            endpoints: self.slots.len(),
            ready: self.slots.len() - self.unready,
            ejected: self.outliers.ejected(),
            panic: self.panic,
        }
    }

    fn poll_discover(&mut self, cx: &mut Context<'_>, now: Instant) {
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

    fn insert(&mut self, key: EndpointKey, endpoint: Endpoint, now: Instant) {
        let tier = self.config.locality.tier_of(&endpoint);
        if let Some(&i) = self.index.get(&key) {
            let slot = &mut self.slots[i];
            if slot.endpoint == endpoint {
                return;
            }
            // A changed description: new service, same load and health history. Requests in
            // flight keep the old service (they own their clone).
            slot.state.set_weight(&endpoint);
            slot.service = self.make.make_endpoint(&endpoint);
            slot.endpoint = endpoint;
            slot.tier = tier;
            if std::mem::replace(&mut slot.ready, false) {
                slot.unready_since = Some(now);
                self.unready += 1;
            }
        } else {
            let state = EndpointState::new(
                &endpoint,
                &self.config.load,
                self.config.slow_start,
                self.outliers.clone(),
                self.reported.metrics().clone(),
                self.tier_in_flight.clone(),
                now,
            );
            tracing::info!(
                endpoint = %endpoint.addr(),
                endpoints = self.slots.len() + 1,
                "discovery: endpoint added"
            );
            self.slots.push(Slot {
                key,
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

    fn remove(&mut self, key: EndpointKey) {
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

    fn topology_changed(&mut self) {
        self.topology = self.topology.wrapping_add(1);
        self.set_version = self.set_version.wrapping_add(1);
        self.outliers.set_total(self.slots.len());
        for tier in &mut self.tiers {
            tier.clear();
        }
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(t) = slot.tier {
                self.tiers[t].push(i);
            }
        }
    }

    /// Recomputes panic mode and tier loads when readiness, the set or an ejection changed.
    fn refresh_loads(&mut self) {
        let key = (self.topology, self.outliers.generation());
        if key == self.seen {
            return;
        }
        self.seen = key;
        let (mut healthy, mut total) = (0usize, 0usize);
        let mut ready = [TierHealth::default(); TIERS];
        let mut in_rotation = [TierHealth::default(); TIERS];
        let mut counts = [0i64; 3];
        let (mut ready_weight, mut rotation_weight) = ([0u64; TIERS], [0u64; TIERS]);
        for slot in &self.slots {
            let state = match (slot.state.health.is_ejected(), slot.ready) {
                (true, _) => EndpointCount::Ejected,
                (false, true) => EndpointCount::Ready,
                (false, false) => EndpointCount::Unready,
            };
            counts[state as usize] += 1;
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
        let outliers = self.outliers.config();
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
    }

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

    /// Schedules a wake-up of every waiting caller for when the earliest ejection of a ready
    /// endpoint ends, since the endpoint may then take its probe. Only on the no-pick path: the
    /// timer is allocated once and reset afterwards.
    fn arm_ejection_expiry(&mut self, cx: &mut Context<'_>) {
        let next = self
            .slots
            .iter()
            .filter(|slot| slot.ready && slot.tier.is_some())
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
    fn repoll_unready<Req>(&mut self, cx: &mut Context<'_>, now: Instant)
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
    fn rebuild(&mut self, i: usize, error: BoxError, now: Instant) {
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

    fn mark_unready(&mut self, i: usize, now: Instant) {
        let slot = &mut self.slots[i];
        if std::mem::replace(&mut slot.ready, false) {
            slot.unready_since = Some(now);
            self.unready += 1;
            self.topology = self.topology.wrapping_add(1);
        }
    }

    fn try_pick<Req>(&mut self, cx: &mut Context<'_>, now: Instant) -> Option<Picked<M::Service>>
    where
        M::Service: Service<Req> + Clone,
        <M::Service as Service<Req>>::Error: Into<BoxError>,
    {
        self.refresh_loads();
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

    fn draw_tier(&mut self) -> Option<usize> {
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

    fn pick_in_tier<Req>(
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
    fn take<Req>(
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
        let slot = &mut self.slots[i];
        if probe && !slot.state.health.claim_probe(now) {
            return None;
        }
        let ticket = EndpointTicket::new(slot.state.clone(), probe, route(tier, tier != self.best));
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
    fn power_of_two(
        &mut self,
        tier: usize,
        now: Instant,
        avoid: Option<&TriedEndpoints>,
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
        let strategy = &self.config.load;
        let cost = |i: usize| self.slots[i].state.cost(strategy, now);
        Some(if cost(b.0) < cost(a.0) { b } else { a })
    }

    fn next_in_turn(&mut self, tier: usize, now: Instant) -> Option<(usize, Admission)> {
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
    fn sample(
        &mut self,
        tier: usize,
        except: Option<usize>,
        avoid: Option<&TriedEndpoints>,
        now: Instant,
    ) -> Option<(usize, Admission)> {
        let n = self.tiers[tier].len();
        if n == 0 {
            return None;
        }
        let allowed = |slots: &[Slot<M::Service>], i: usize| {
            Some(i) != except && avoid.is_none_or(|tried| !tried.contains(&slots[i].key))
        };
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
        tried: &TriedEndpoints,
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

    /// Hash mode: the inputs for a ring over the current set, when the ring is out of date and
    /// no other caller is building one. The caller builds it *without* the lock (a ring of 1000
    /// endpoints takes milliseconds) and hands it to [`install_ring`](Self::install_ring).
    pub(crate) fn ring_job(&mut self) -> Option<RingJob> {
        let config = self.ring_config.as_ref()?;
        if self.ring_version == self.set_version || self.ring_building {
            return None;
        }
        self.ring_building = true;
        Some(RingJob {
            endpoints: (self.slots.iter())
                .map(|slot| (slot.key, slot.endpoint.weight()))
                .collect(),
            config: config.clone(),
            version: self.set_version,
        })
    }

    /// Installs a ring built from a [`RingJob`]; it is used only while the set is still the one it
    /// was built for (otherwise the next hashed request builds another).
    pub(crate) fn install_ring(&mut self, ring: HashRing, version: u64) {
        self.ring_building = false;
        self.ring = Some(ring);
        self.ring_version = version;
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
            let i = self.ring.as_ref()?.pick(hash, &view)?;
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

    fn eligible(&self, i: usize, now: Instant) -> Option<Admission> {
        if !self.slots[i].ready {
            return None;
        }
        match self.admission(i, now) {
            Admission::Closed => None,
            admission => Some(admission),
        }
    }

    /// What the outlier gate of slot `i` admits, panic mode included: in panic an ejected
    /// endpoint is used anyway (`Open`), except that once its ejection is over its next request
    /// is still its probe, so that panic traffic can bring it back (see the
    /// [eject module](crate::eject)).
    fn admission(&self, i: usize, now: Instant) -> Admission {
        match self.slots[i].state.health.admission(now) {
            Admission::Closed if self.panic => Admission::Open,
            admission => admission,
        }
    }
}

/// What building a ring needs, taken out of the lock; see [`Core::ring_job`].
#[derive(Debug)]
pub(crate) struct RingJob {
    endpoints: Vec<(EndpointKey, mesh_core::Weight)>,
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
        u64::from(self.slots[index].state.load.pending())
    }

    fn total(&self) -> u64 {
        self.total
    }

    fn eligible(&self, index: usize) -> bool {
        let slot = &self.slots[index];
        slot.tier == Some(self.tier)
            && (slot.key == self.reserved
                || (slot.ready
                    && (self.panic || slot.state.health.admission(self.now) != Admission::Closed)))
    }

    fn eligible_weight(&self) -> Option<u64> {
        Some(self.weight)
    }
}
