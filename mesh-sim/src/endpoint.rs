//! Simulated endpoints: [`EndpointSpec`] (what one should do), [`SimEndpoint`] (the service) and
//! [`Fleet`] (all of a scenario's endpoints, sharing one clock origin).

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use mesh_core::error::{ConnectError, UpstreamError};
use mesh_core::{BoxError, Endpoint};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::fault::{self, Fault, FaultKind};
use crate::latency::{self, Latency};
use crate::{SimError, seed_for};

/// What one simulated endpoint is: its address and locality, its latency, its faults.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointSpec {
    endpoint: Endpoint,
    latency: Latency,
    faults: Vec<Fault>,
}

impl EndpointSpec {
    /// A healthy endpoint.
    pub fn new(endpoint: Endpoint, latency: Latency) -> Self {
        Self {
            endpoint,
            latency,
            faults: Vec::new(),
        }
    }

    /// Adds a fault window (see [`Fault`] for overlapping windows).
    #[must_use]
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// The endpoint (address, locality, weight).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The latency distribution.
    pub fn latency(&self) -> Latency {
        self.latency
    }

    /// The fault windows, in order.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// The same endpoint with no faults: the healthy baseline.
    #[must_use]
    pub fn healthy(mut self) -> Self {
        self.faults.clear();
        self
    }

    /// Checks the latency and every fault window.
    pub fn validate(&self) -> Result<(), SimError> {
        self.latency.validate()?;
        self.faults.iter().try_for_each(Fault::validate)
    }
}

/// What a [`SimEndpoint`] keeps, shared by its clones.
struct Shared {
    spec: EndpointSpec,
    epoch: Instant,
    rng: Mutex<fastrand::Rng>,
    /// Attempt times since `epoch`, in the order the attempts arrived.
    attempts: Mutex<Vec<Duration>>,
    /// `false` for the stand-in that [`Fleet::make_endpoint`] returns for an unknown address.
    counted: bool,
}

/// A simulated endpoint: a [`Service`] for `http::Request<B>` (any body `B`, never read) that
/// answers `200 OK` with a two-byte body after a latency drawn from its [`Latency`], unless one of
/// its [`Fault`] windows is active when the request arrives.
///
/// - **Always ready**: `poll_ready` never waits and never fails; faults show up in responses and
///   errors, as they do with a real connection pool.
/// - **Counts attempts**: every `call` is recorded with its virtual time, for the
///   [`Report`](crate::Report)'s shares and time to ejection.
/// - **Clone** is cheap and clones share the RNG, the attempt log and the fault schedule (the
///   balancer keeps one clone and hands out another).
/// - **Deterministic**: the latency RNG is seeded and drawn once per `call` (never in
///   `poll_ready`), so one seed and one call order give the same latencies.
///
/// Errors are mesh-core's: [`ConnectError`] for [`FaultKind::Refuse`], [`UpstreamError`] (sent)
/// for [`FaultKind::Reset`].
#[derive(Clone)]
pub struct SimEndpoint {
    shared: Arc<Shared>,
}

impl fmt::Debug for SimEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimEndpoint")
            .field("addr", &self.shared.spec.endpoint.addr())
            .field("latency", &self.shared.spec.latency)
            .field("faults", &self.shared.spec.faults)
            .finish_non_exhaustive()
    }
}

impl SimEndpoint {
    fn new(spec: EndpointSpec, epoch: Instant, seed: u64, counted: bool) -> Self {
        Self {
            shared: Arc::new(Shared {
                spec,
                epoch,
                rng: Mutex::new(fastrand::Rng::with_seed(seed)),
                attempts: Mutex::new(Vec::new()),
                counted,
            }),
        }
    }

    /// The endpoint this service stands for.
    pub fn endpoint(&self) -> &Endpoint {
        &self.shared.spec.endpoint
    }

    /// Its specification.
    pub fn spec(&self) -> &EndpointSpec {
        &self.shared.spec
    }

    /// The virtual times (from the scenario start) at which requests reached it, in order.
    pub fn attempts(&self) -> Vec<Duration> {
        lock(&self.shared.attempts).clone()
    }

    /// How many requests reached it.
    pub fn attempt_count(&self) -> usize {
        lock(&self.shared.attempts).len()
    }

    /// What the request arriving now gets: the fault in force and the latency to wait.
    fn plan(&self) -> Planned {
        let at = Instant::now().saturating_duration_since(self.shared.epoch);
        lock(&self.shared.attempts).push(at);
        let spec = &self.shared.spec;
        let kind = fault::active(&spec.faults, at);
        // Draw for every request, faulty or not: every attempt consumes exactly one draw, so a
        // fault never shifts which latency the endpoint's n-th attempt gets.
        let sampled = spec.latency.sample(&mut lock(&self.shared.rng));
        match kind {
            None => Planned::Answer(StatusCode::OK, sampled),
            Some(FaultKind::Slow(factor)) => {
                Planned::Answer(StatusCode::OK, latency::scale(sampled, factor))
            }
            Some(FaultKind::Status(code)) => Planned::Answer(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                Duration::ZERO,
            ),
            Some(FaultKind::Reset) => Planned::Reset(sampled),
            Some(FaultKind::Refuse) => Planned::Refuse,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Clone, Copy, Debug)]
enum Planned {
    Answer(StatusCode, Duration),
    Reset(Duration),
    Refuse,
}

impl<B> Service<Request<B>> for SimEndpoint {
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> ResponseFuture {
        let planned = self.plan();
        let delay = match planned {
            Planned::Answer(_, d) | Planned::Reset(d) if !d.is_zero() => {
                Some(Box::pin(tokio::time::sleep(d)))
            }
            _ => None,
        };
        ResponseFuture { delay, planned }
    }
}

/// The response future of a [`SimEndpoint`]: waits the planned latency on the tokio clock, then
/// answers or fails. Dropping it cancels the request (the attempt stays counted).
pub struct ResponseFuture {
    delay: Option<Pin<Box<Sleep>>>,
    planned: Planned,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("planned", &self.planned)
            .finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Full<Bytes>>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(delay) = self.delay.as_mut() {
            if delay.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.delay = None;
        }
        Poll::Ready(match self.planned {
            Planned::Answer(status, _) => {
                let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                *response.status_mut() = status;
                Ok(response)
            }
            Planned::Reset(_) => Err(UpstreamError::new(SimReset).into()),
            Planned::Refuse => Err(ConnectError::new(SimRefused).into()),
        })
    }
}

/// The cause inside the [`UpstreamError`] of a [`FaultKind::Reset`].
#[derive(Debug)]
struct SimReset;

impl fmt::Display for SimReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("simulated connection reset after the request was sent")
    }
}

impl std::error::Error for SimReset {}

/// The cause inside the [`ConnectError`] of a [`FaultKind::Refuse`].
#[derive(Debug)]
struct SimRefused;

impl fmt::Display for SimRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("simulated connection refused")
    }
}

impl std::error::Error for SimRefused {}

/// Every endpoint of one run, with the virtual time the run started at (the origin of every
/// fault window and attempt time).
///
/// Build one inside the runtime that will drive it (the origin is `tokio::time::Instant::now()`
/// at construction); [`Scenario::run`](crate::Scenario::run) does this for you and hands the
/// fleet to your stack builder. Plug it into a balancer with [`endpoint_list`](Self::endpoint_list)
/// (discovery) and [`make_endpoint`](Self::make_endpoint) (mesh-balance's `MakeEndpoint`), or
/// hand [`services`](Self::services) to tower's `ServiceList`.
#[derive(Clone, Debug)]
pub struct Fleet {
    endpoints: Vec<SimEndpoint>,
    epoch: Instant,
    seed: u64,
}

impl Fleet {
    /// Endpoints from `specs`, their RNGs seeded from `seed` and their position, starting now.
    ///
    /// # Errors
    ///
    /// An invalid latency or fault, or two endpoints with the same address.
    pub fn new(specs: Vec<EndpointSpec>, seed: u64) -> Result<Self, SimError> {
        let mut seen = HashSet::new();
        for spec in &specs {
            spec.validate()?;
            if !seen.insert(spec.endpoint.addr()) {
                return Err(SimError::config(
                    "endpoints",
                    "two endpoints have the same address",
                ));
            }
        }
        let epoch = Instant::now();
        let endpoints = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| SimEndpoint::new(spec, epoch, seed_for(seed, i as u64 + 1), true))
            .collect();
        Ok(Self {
            endpoints,
            epoch,
            seed,
        })
    }

    /// The virtual instant the run started at.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The scenario's seed, for the stack under test to derive its own seeds from (with
    /// [`seed_for`](crate::seed_for), so that they differ from the endpoints' own).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The endpoints' services, in the order of their specs.
    pub fn endpoints(&self) -> &[SimEndpoint] {
        &self.endpoints
    }

    /// Clones of the services, for tower's `ServiceList` (or any discovery of services).
    pub fn services(&self) -> Vec<SimEndpoint> {
        self.endpoints.clone()
    }

    /// The endpoints, for a discovery source such as mesh-balance's `StaticDiscover`.
    pub fn endpoint_list(&self) -> Vec<Endpoint> {
        self.endpoints
            .iter()
            .map(|e| e.endpoint().clone())
            .collect()
    }

    /// A factory from an [`Endpoint`] to its service (a clone sharing the attempt log), for
    /// mesh-balance's `MakeEndpoint`. An address that is not in the fleet gets a stand-in that
    /// refuses every connection and is left out of reports.
    pub fn make_endpoint(&self) -> impl Fn(&Endpoint) -> SimEndpoint + Clone + Send + Sync + use<> {
        let endpoints = self.endpoints.clone();
        let epoch = self.epoch;
        move |ep: &Endpoint| {
            endpoints
                .iter()
                .find(|e| e.endpoint().addr() == ep.addr())
                .cloned()
                .unwrap_or_else(|| {
                    let spec = EndpointSpec::new(ep.clone(), Latency::Fixed(Duration::ZERO))
                        .fault(Fault::refuse(Duration::ZERO));
                    SimEndpoint::new(spec, epoch, 0, false)
                })
        }
    }

    pub(crate) fn counted(&self) -> impl Iterator<Item = &SimEndpoint> {
        self.endpoints.iter().filter(|e| e.shared.counted)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use http_body_util::BodyExt;
    use mesh_core::classify::ErrorKind;
    use tower::ServiceExt;

    use super::*;

    fn addr(n: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], 8000 + n))
    }

    fn spec(n: u16) -> EndpointSpec {
        EndpointSpec::new(
            Endpoint::new(addr(n)),
            Latency::Fixed(Duration::from_millis(5)),
        )
    }

    /// Sends one request at the current virtual time; its status or error kind and how long it
    /// took.
    async fn probe(ep: &SimEndpoint) -> (Result<u16, ErrorKind>, Duration) {
        let start = Instant::now();
        let result = match ep.clone().oneshot(Request::new(())).await {
            Ok(res) => {
                let status = res.status().as_u16();
                res.into_body().collect().await.unwrap();
                Ok(status)
            }
            Err(e) => Err(ErrorKind::of_dyn(&*e)),
        };
        (result, start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn faults_apply_at_their_virtual_times() {
        let s = Duration::from_secs;
        let spec = spec(1)
            .fault(Fault::slow(20.0, s(10)).until(s(20)))
            .fault(Fault::status(503, s(30)).until(s(40)))
            .fault(Fault::reset(s(50)).until(s(60)))
            .fault(Fault::refuse(s(70)));
        let fleet = Fleet::new(vec![spec], 1).unwrap();
        let ep = &fleet.endpoints()[0];
        let ms = Duration::from_millis;
        let at = |t: Duration| tokio::time::sleep_until(fleet.epoch() + t);

        assert_eq!(probe(ep).await, (Ok(200), ms(5)));
        at(s(10)).await;
        assert_eq!(probe(ep).await, (Ok(200), ms(100)));
        at(s(20)).await;
        assert_eq!(probe(ep).await, (Ok(200), ms(5)), "recovered at 20 s");
        at(s(30)).await;
        assert_eq!(probe(ep).await, (Ok(503), ms(0)), "a status comes at once");
        at(s(50)).await;
        assert_eq!(
            probe(ep).await,
            (Err(ErrorKind::Upstream { request_sent: true }), ms(5)),
            "a reset comes after the latency"
        );
        at(s(70)).await;
        assert_eq!(probe(ep).await, (Err(ErrorKind::Connect), ms(0)));
        at(s(1000)).await;
        assert_eq!(probe(ep).await.0, Err(ErrorKind::Connect), "never recovers");

        let attempts = ep.attempts();
        assert_eq!(attempts.len(), 7);
        assert_eq!(&attempts[..3], &[ms(0), s(10), s(20)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_factory_shares_logs_and_refuses_strangers() {
        let fleet = Fleet::new(vec![spec(1), spec(2)], 1).unwrap();
        let make = fleet.make_endpoint();
        let built = make(&Endpoint::new(addr(2)));
        assert_eq!(probe(&built).await.0, Ok(200));
        assert_eq!(fleet.endpoints()[1].attempt_count(), 1);
        let stranger = make(&Endpoint::new(addr(9)));
        assert_eq!(probe(&stranger).await.0, Err(ErrorKind::Connect));
        assert_eq!(fleet.counted().count(), 2);
        assert_eq!(fleet.endpoint_list().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn bad_fleets_are_refused() {
        assert!(Fleet::new(vec![spec(1), spec(1)], 1).is_err());
        assert!(Fleet::new(vec![spec(1).fault(Fault::status(7, Duration::ZERO))], 1).is_err());
    }
}
