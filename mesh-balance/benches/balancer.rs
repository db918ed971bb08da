//! Cost of one request through the balancer (`poll_ready` + `call` + the response, dropped) against
//! a ready no-op endpoint: our `Balance` (PeakEWMA to body end, pending requests, round robin)
//! versus tower's `p2c::Balance` over `PeakEwmaDiscover` and over `PendingRequestsDiscover`, at 2,
//! 10, 100 and 1000 endpoints; and our `Balance` in consistent-hash mode (`mesh_hash_path`). Run `cargo bench -p towermesh-balance`; divan's allocation profiler
//! reports heap allocations per iteration next to the time.
//!
//! The `mesh_*` runs record metrics into the global meter, a no-op as in an application without an
//! OpenTelemetry provider; `mesh_peak_ewma_sdk_metrics` records into a real SDK provider (its
//! periodic reader exports to memory once a minute) to show what the balancer's metrics cost when exported.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use divan::Bencher;
use http::{Request, Response, Uri};
use http_body_util::Empty;
use mesh_balance::hash::{HashConfig, HashKey, HashRing};
use mesh_balance::{Balance, BalanceConfig, LoadStrategy};
use mesh_core::{Endpoint, EndpointKey, Weight};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tower::discover::{Change, ServiceList};
use tower::load::{CompleteOnResponse, PeakEwmaDiscover, PendingRequestsDiscover};
use tower_service::Service;

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

const ENDPOINTS: [usize; 4] = [2, 10, 100, 1000];

fn main() {
    divan::main();
}

/// An endpoint that is always ready and answers at once.
#[derive(Clone, Copy, Debug)]
struct NoOp;

impl Service<Request<()>> for NoOp {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Empty<Bytes>>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(Empty::new())))
    }
}

/// Our discovery input: the endpoints once, then nothing.
struct Fixed(VecDeque<Endpoint>);

impl futures_core::Stream for Fixed {
    type Item = Result<Change<EndpointKey, Endpoint>, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(
            self.0
                .pop_front()
                .map(|ep| Ok(Change::Insert(ep.key(), ep))),
        )
    }
}

fn endpoints(n: usize) -> Fixed {
    Fixed(
        (0..n)
            .map(|i| Endpoint::new(([10, (i >> 8) as u8, i as u8, 1], 80).into()))
            .collect(),
    )
}

/// One request: ready, call, complete, drop the response (which ends the measurement).
fn one_request<S>(service: &mut S, cx: &mut Context<'_>)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    request(service, cx, Request::new(()));
}

fn request<S>(service: &mut S, cx: &mut Context<'_>, request: Request<()>)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    match service.poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        other => panic!("endpoint not ready: {:?}", other.map(|r| r.err())),
    }
    let future = pin!(service.call(request));
    match future.poll(cx) {
        Poll::Ready(Ok(response)) => drop(black_box(response)),
        _ => panic!("no-op endpoint did not answer"),
    }
}

fn bench_service<S>(bencher: Bencher<'_, '_>, mut service: S)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    // Warm up: discovery applied, every endpoint polled once.
    for _ in 0..2000 {
        one_request(&mut service, &mut cx);
    }
    bencher.bench_local(|| one_request(&mut service, &mut cx));
}

fn ours(bencher: Bencher<'_, '_>, n: usize, load: LoadStrategy) {
    let config = BalanceConfig::default().seed(1).load(load);
    ours_with(bencher, n, config);
}

fn ours_with(bencher: Bencher<'_, '_>, n: usize, config: BalanceConfig) {
    let balance = Balance::new(endpoints(n), |_: &Endpoint| NoOp, config).unwrap();
    bench_service(bencher, balance);
}

#[divan::bench(args = ENDPOINTS)]
fn mesh_peak_ewma(bencher: Bencher<'_, '_>, n: usize) {
    ours(bencher, n, LoadStrategy::default());
}

#[divan::bench(args = ENDPOINTS)]
fn mesh_peak_ewma_sdk_metrics(bencher: Bencher<'_, '_>, n: usize) {
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(InMemoryMetricExporter::default()).build())
        .build();
    let config = BalanceConfig::default()
        .seed(1)
        .meter(provider.meter("bench"));
    ours_with(bencher, n, config);
}

#[divan::bench(args = ENDPOINTS)]
fn mesh_pending_requests(bencher: Bencher<'_, '_>, n: usize) {
    ours(bencher, n, LoadStrategy::PendingRequests);
}

#[divan::bench(args = ENDPOINTS)]
fn mesh_round_robin(bencher: Bencher<'_, '_>, n: usize) {
    ours(bencher, n, LoadStrategy::RoundRobin);
}

/// Paths the hash-mode bench keys on. `Uri::from_static` borrows, so building a request with
/// one costs no allocation and the figure is the balancer's alone.
const PATHS: [&str; 16] = [
    "/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h", "/i", "/j", "/k", "/l", "/m", "/n", "/o", "/p",
];

/// Consistent hashing on the path (PeakEWMA for the reservation): the P2C reservation, then the
/// ring pick with bounded load over the in-flight counts, which scans the tier (O(n)).
#[divan::bench(args = ENDPOINTS)]
fn mesh_hash_path(bencher: Bencher<'_, '_>, n: usize) {
    let config = BalanceConfig::default()
        .seed(1)
        .hash(HashConfig::new(HashKey::path()));
    let mut balance = Balance::new(endpoints(n), |_: &Endpoint| NoOp, config).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let keyed = |i: usize| {
        Request::builder()
            .uri(Uri::from_static(PATHS[i % PATHS.len()]))
            .body(())
            .unwrap()
    };
    for i in 0..2000 {
        request(&mut balance, &mut cx, keyed(i));
    }
    let mut i = 0;
    bencher.bench_local(|| {
        i += 1;
        request(&mut balance, &mut cx, keyed(i));
    });
}

/// Building the ring, which hash mode does under the balancer's lock on the first hashed request
/// after a discovery change (every caller waits for it meanwhile).
#[divan::bench(args = ENDPOINTS)]
fn hash_ring_rebuild(bencher: Bencher<'_, '_>, n: usize) {
    let endpoints: Vec<(EndpointKey, Weight)> = endpoints(n)
        .0
        .into_iter()
        .map(|ep| (ep.key(), ep.weight()))
        .collect();
    bencher.bench_local(|| HashRing::build(black_box(&endpoints)));
}

#[divan::bench(args = ENDPOINTS)]
fn tower_peak_ewma(bencher: Bencher<'_, '_>, n: usize) {
    let discover = PeakEwmaDiscover::new(
        ServiceList::new(vec![NoOp; n]),
        Duration::from_millis(30),
        Duration::from_secs(10),
        CompleteOnResponse::default(),
    );
    bench_service(bencher, tower::balance::p2c::Balance::new(discover));
}

#[divan::bench(args = ENDPOINTS)]
fn tower_pending_requests(bencher: Bencher<'_, '_>, n: usize) {
    let discover = PendingRequestsDiscover::new(
        ServiceList::new(vec![NoOp; n]),
        CompleteOnResponse::default(),
    );
    bench_service(bencher, tower::balance::p2c::Balance::new(discover));
}
