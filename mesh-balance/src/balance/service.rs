//! [`Balance`]: the clonable balancer service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{Request, Response};
use mesh_core::attempts::{AvoidTried, TriedEndpoints, TriedKeys};
use mesh_core::classify::{ClassifyResponse, FailureClass, MakeClassifier, MeshClassifier};
use mesh_core::error::{NoEndpoints, Overloaded};
use mesh_core::{BoxError, Endpoint, EndpointKey};
use tokio::time::{Instant, Sleep};
use tower::discover::Discover;
use tower_service::Service;

use super::core::{Core, Picked};
use super::status::StatusSource;
use super::waiters::Waiters;
use super::{
    BalanceConfig, BalanceHandle, BalanceStatus, ConfigError, EndpointStatus, MakeEndpoint,
    MeasuredBody, ResponseFuture,
};
use crate::hash::HashKey;
use crate::load::lock;
use crate::metrics::BalanceMetrics;

/// What every clone of one balancer shares.
struct Shared<D, M: MakeEndpoint> {
    core: Mutex<Core<D, M>>,
    waiters: Arc<Waiters>,
    /// Wakes every waiting caller; the waker all endpoint services and discovery are polled with.
    fanout: Waker,
    /// [`BalanceConfig::fail_fast_after`] in nanoseconds; atomics, so that a reconfiguration
    /// reaches every clone without a lock of its own.
    fail_fast_after: AtomicU64,
    max_waiters: AtomicUsize,
    /// [`BalanceConfig::max_in_flight`]; `usize::MAX` when unbounded.
    max_in_flight: AtomicUsize,
    /// The balancer's instruments, with the in-flight count `max_in_flight` is checked against.
    metrics: Arc<BalanceMetrics>,
    /// Hash mode: the request part that keys the ring.
    hash_key: Option<HashKey>,
    /// [`BalanceConfig::name`], for the handles.
    name: Option<Arc<str>>,
}

impl<D, M> StatusSource for Shared<D, M>
where
    D: Discover<Key = EndpointKey, Service = Endpoint> + Send,
    D::Error: Into<BoxError>,
    M: MakeEndpoint + Send,
    M::Service: Send,
{
    fn status(&self) -> BalanceStatus {
        lock(&self.core).status()
    }

    fn endpoints(&self) -> Vec<EndpointStatus> {
        lock(&self.core).endpoints(Instant::now())
    }

    fn reconfigure(&self, config: BalanceConfig) -> Result<(), ConfigError> {
        Shared::reconfigure(self, config)
    }
}

impl<D, M> Shared<D, M>
where
    D: Discover<Key = EndpointKey, Service = Endpoint>,
    D::Error: Into<BoxError>,
    M: MakeEndpoint,
{
    /// Validates, then applies under the balancer's lock: a caller polling after this returns
    /// sees every new setting.
    fn reconfigure(&self, config: BalanceConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let (fail_fast_after, max_waiters) = (config.fail_fast_after, config.max_waiters);
        let max_in_flight = config.max_in_flight;
        let mut core = lock(&self.core);
        core.reconfigure(config, Instant::now())?;
        self.fail_fast_after
            .store(duration_nanos(fail_fast_after), Ordering::Relaxed);
        self.max_waiters.store(max_waiters, Ordering::Relaxed);
        self.max_in_flight
            .store(max_in_flight.unwrap_or(usize::MAX), Ordering::Relaxed);
        Ok(())
    }

    fn fail_fast_after(&self) -> Duration {
        Duration::from_nanos(self.fail_fast_after.load(Ordering::Relaxed))
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A load balancer over a discovered set of endpoints; see the [module docs](super).
///
/// `Balance` is a `Service<http::Request<B>>`. Clones share the endpoint set, loads and health;
/// each clone has its own reservation, so a clone starts without one, and a clone dropped after
/// `poll_ready` gives its reservation back (a reserved probe included).
pub struct Balance<D, M: MakeEndpoint, C = MeshClassifier> {
    shared: Arc<Shared<D, M>>,
    classifier: C,
    reserved: Option<Picked<M::Service>>,
    fail_fast: Option<Pin<Box<Sleep>>>,
    waiting: Option<Waker>,
    /// The endpoints this instance sent the attempts of its current request to: a request marked
    /// [`AvoidTried`] is another attempt of it, any other request starts a new list.
    tried: Tried,
}

impl<D, M> Balance<D, M>
where
    D: Discover<Key = EndpointKey, Service = Endpoint>,
    D::Error: Into<BoxError>,
    M: MakeEndpoint,
{
    /// A balancer over the endpoints `discover` yields, building one service per endpoint with
    /// `make`, classifying outcomes with mesh-core's [`MeshClassifier`].
    ///
    /// Nothing is polled until the first `poll_ready`. Fails only on an invalid `config`.
    pub fn new(discover: D, make: M, config: BalanceConfig) -> Result<Self, ConfigError> {
        Self::with_classifier(discover, make, config, MeshClassifier::new())
    }
}

impl<D, M, C> Balance<D, M, C>
where
    D: Discover<Key = EndpointKey, Service = Endpoint>,
    D::Error: Into<BoxError>,
    M: MakeEndpoint,
{
    /// Like [`new`](Balance::new), with another classifier deciding which outcomes are failures.
    pub fn with_classifier(
        discover: D,
        make: M,
        config: BalanceConfig,
        classifier: C,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let waiters = Arc::new(Waiters::default());
        let core = Core::new(discover, make, config.clone(), waiters.clone());
        let shared = Shared {
            metrics: core.metrics(),
            fanout: Waker::from(waiters.clone()),
            fail_fast_after: AtomicU64::new(duration_nanos(config.fail_fast_after)),
            max_waiters: AtomicUsize::new(config.max_waiters),
            max_in_flight: AtomicUsize::new(config.max_in_flight.unwrap_or(usize::MAX)),
            hash_key: config.hash.as_ref().map(|h| h.key.clone()),
            name: config.name.as_deref().map(Arc::from),
            core: Mutex::new(core),
            waiters,
        };
        Ok(Self {
            shared: Arc::new(shared),
            classifier,
            reserved: None,
            fail_fast: None,
            waiting: None,
            tried: Tried::default(),
        })
    }

    /// The endpoint set as of the last poll of any clone.
    pub fn status(&self) -> BalanceStatus {
        lock(&self.shared.core).status()
    }

    /// One [`EndpointStatus`] per endpoint in the set: readiness as of the last poll of any
    /// clone, load and outlier gate as of now. Takes the balancer's lock once, briefly.
    pub fn endpoints(&self) -> Vec<EndpointStatus> {
        lock(&self.shared.core).endpoints(Instant::now())
    }

    /// Applies a new configuration to this balancer and every clone, without dropping a request;
    /// see [Live reconfiguration](super#live-reconfiguration) for what changes how.
    ///
    /// Every clone sees the change from its next pick. Requests in flight, and reservations
    /// already made, are not touched. Kept from the first configuration: the
    /// [name](BalanceConfig::name), [meter](BalanceConfig::meter) and [seed](BalanceConfig::seed)
    /// (silently), and hash mode: a `config` that turns [hashing](BalanceConfig::hash) on or off
    /// or changes its key fails with a [`ConfigError`] naming `hash` (its ring settings may
    /// change).
    ///
    /// # Errors
    ///
    /// An invalid `config` (see [`BalanceConfig::validate`]) or a change of hash mode; then
    /// nothing changes.
    pub fn reconfigure(&self, config: BalanceConfig) -> Result<(), ConfigError> {
        self.shared.reconfigure(config)
    }

    /// A clonable, non-generic view of this balancer (all its clones) for an admin endpoint; it
    /// does not keep the balancer alive.
    pub fn handle(&self) -> BalanceHandle
    where
        D: Send + 'static,
        M: Send + 'static,
        M::Service: Send + 'static,
    {
        let shared: Arc<dyn StatusSource> = self.shared.clone();
        BalanceHandle {
            name: self.shared.name.clone(),
            source: Arc::downgrade(&shared),
        }
    }

    fn stop_waiting(&mut self) {
        if let Some(waker) = self.waiting.take() {
            self.shared.waiters.remove(&waker);
        }
    }

    fn no_endpoints(&mut self) -> Poll<Result<(), BoxError>> {
        self.stop_waiting();
        Poll::Ready(Err(NoEndpoints::new().into()))
    }
}

impl<D, M, C, B, RB> Service<Request<B>> for Balance<D, M, C>
where
    D: Discover<Key = EndpointKey, Service = Endpoint>,
    D::Error: Into<BoxError>,
    M: MakeEndpoint,
    M::Service: Service<Request<B>, Response = Response<RB>> + Clone,
    <M::Service as Service<Request<B>>>::Error: Into<BoxError>,
    C: MakeClassifier<FailureClass = FailureClass>,
    C::Classifier: ClassifyResponse<FailureClass = FailureClass>,
{
    type Response = Response<MeasuredBody<RB, C::ClassifyEos>>;
    type Error = BoxError;
    type Future = ResponseFuture<<M::Service as Service<Request<B>>>::Future, C::Classifier>;

    /// Reserves a ready endpoint. Waits while none is ready, for at most `fail_fast_after` since
    /// the balancer last had one; then fails with [`NoEndpoints`], and keeps failing at once until
    /// an endpoint is ready again. Also fails at once when `max_waiters` callers already wait.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.reserved.is_some() {
            return Poll::Ready(Ok(()));
        }
        let max_in_flight = self.shared.max_in_flight.load(Ordering::Relaxed);
        if max_in_flight != usize::MAX
            && usize::try_from(self.shared.metrics.total_in_flight()).unwrap_or(0) >= max_in_flight
        {
            self.stop_waiting();
            return Poll::Ready(Err(Overloaded::new().into()));
        }
        let now = mesh_core::time::now();
        let shared = Arc::clone(&self.shared);
        let mut core = lock(&shared.core);
        let mut fanout = Context::from_waker(&shared.fanout);
        if let Some(picked) = core.poll_pick::<Request<B>>(&mut fanout, now) {
            drop(core);
            self.reserved = Some(picked);
            self.stop_waiting();
            return Poll::Ready(Ok(()));
        }
        let deadline = mesh_core::time::deadline_after(
            *core.unready_since.get_or_insert(now),
            shared.fail_fast_after(),
        );
        let max_waiters = shared.max_waiters.load(Ordering::Relaxed);
        if now >= deadline || !shared.waiters.register(cx.waker(), max_waiters) {
            drop(core);
            return self.no_endpoints();
        }
        // Registered while holding the set's lock: every later readiness change is seen. A wake
        // that fired between our poll and the registration left the set dirty: poll again.
        if shared.waiters.is_dirty() {
            cx.waker().wake_by_ref();
        }
        drop(core);
        if !matches!(&self.waiting, Some(waker) if waker.will_wake(cx.waker()))
            && let Some(old) = self.waiting.replace(cx.waker().clone())
        {
            shared.waiters.remove(&old);
        }
        let sleep = self
            .fail_fast
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        if sleep.as_mut().poll(cx).is_ready() {
            return self.no_endpoints();
        }
        Poll::Pending
    }

    /// Sends `request` to the reserved endpoint. In [hash mode](super#consistent-hashing), a
    /// request carrying the key goes to the ring's endpoint for it instead when that endpoint is
    /// ready now, and the reservation is given back. A retried request whose reserved endpoint it
    /// already tried goes to an untried eligible endpoint instead when one is ready now: a
    /// request marked [`AvoidTried`] (mesh-retry's layer marks its retries) avoids the endpoints
    /// this instance sent the earlier attempts to; one carrying a [`TriedEndpoints`] avoids those
    /// it names, and the endpoint that takes it is recorded there. `call` never waits.
    ///
    /// # Panics
    ///
    /// When `poll_ready` has not returned `Ready(Ok(()))` since the last `call`.
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut picked = self
            .reserved
            .take()
            .expect("poll_ready must be called first");
        if let Some(key) = &self.shared.hash_key
            && let Some(hash) = key.hash(&request)
        {
            let mut core = lock(&self.shared.core);
            if let Some(job) = core.ring_job() {
                drop(core);
                let ring = job.build();
                core = lock(&self.shared.core);
                core.install_ring(ring, job);
            }
            let mut fanout = Context::from_waker(&self.shared.fanout);
            let now = mesh_core::time::now();
            if let Some(home) = core.pick_hashed::<Request<B>>(hash, &picked, &mut fanout, now) {
                let unused = std::mem::replace(&mut picked, home);
                drop(core);
                // Outside the lock: gives back a claimed probe (which wakes waiters) and drops
                // the reserved service, releasing whatever its readiness held.
                drop(unused);
            }
        }
        let shared = request.extensions().get::<TriedEndpoints>();
        let retry = request.extensions().get::<AvoidTried>().is_some();
        if !retry {
            // Not a retry of the request this instance carried last: a new request.
            self.tried.clear();
        }
        let avoid = match shared {
            Some(shared) => Some(shared.snapshot()),
            None if retry => Some(self.tried.keys()),
            None => None,
        };
        if let Some(avoid) = avoid.filter(|avoid| avoid.contains(&picked.key)) {
            let mut core = lock(&self.shared.core);
            let mut fanout = Context::from_waker(&self.shared.fanout);
            let now = mesh_core::time::now();
            if let Some(other) = core.pick_untried::<Request<B>>(&avoid, &picked, &mut fanout, now)
            {
                let unused = std::mem::replace(&mut picked, other);
                drop(core);
                // Outside the lock, as above.
                drop(unused);
            }
        }
        if let Some(shared) = shared {
            shared.record(picked.key);
        }
        self.tried.record(picked.key);
        let Picked {
            mut service,
            mut ticket,
            ..
        } = picked;
        let classifier = self.classifier.make_classifier(&request);
        ticket.start();
        ResponseFuture::new(service.call(request), classifier, ticket)
    }
}

/// The endpoints one instance sent the attempts of its current request to. The first is kept
/// inline; a retry (the second attempt) moves the list to a box. Every response future of the
/// retry layer holds a balancer instance, so the list inline ([`TriedKeys`], 136 bytes) would be
/// carried and copied with every request, where only a retried one needs more than a key.
#[derive(Debug, Default)]
struct Tried {
    first: Option<EndpointKey>,
    /// Once a second endpoint is recorded: all of them, `first` included.
    all: Option<Box<TriedKeys>>,
}

impl Tried {
    fn clear(&mut self) {
        self.first = None;
        self.all = None;
    }

    fn record(&mut self, key: EndpointKey) {
        match (&mut self.all, self.first) {
            (Some(all), _) => all.record(key),
            (None, None) => self.first = Some(key),
            (None, Some(first)) if first == key => {}
            (None, Some(first)) => {
                let mut all = TriedKeys::new();
                all.record(first);
                all.record(key);
                self.all = Some(Box::new(all));
            }
        }
    }

    fn keys(&self) -> TriedKeys {
        match (&self.all, self.first) {
            (Some(all), _) => **all,
            (None, first) => {
                let mut keys = TriedKeys::new();
                if let Some(first) = first {
                    keys.record(first);
                }
                keys
            }
        }
    }
}

impl<D, M: MakeEndpoint, C: Clone> Clone for Balance<D, M, C> {
    /// Shares the endpoint set; the clone starts without a reservation.
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            classifier: self.classifier.clone(),
            reserved: None,
            fail_fast: None,
            waiting: None,
            tried: Tried::default(),
        }
    }
}

impl<D, M: MakeEndpoint, C> Drop for Balance<D, M, C> {
    fn drop(&mut self) {
        if let Some(waker) = self.waiting.take() {
            self.shared.waiters.remove(&waker);
        }
    }
}

impl<D, M: MakeEndpoint, C> fmt::Debug for Balance<D, M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balance")
            .field("reserved", &self.reserved.is_some())
            .field("waiting", &self.waiting.is_some())
            .finish_non_exhaustive()
    }
}
