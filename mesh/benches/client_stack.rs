//! The cost of the whole client stack per call, without a network: observe (span and request
//! metrics) → timeout → retry with budget → balancer → breaker, over a no-op endpoint service
//! that answers `200` at once (put in place of the breaker-over-HTTP-client with
//! `ClientBuilder::wrap_endpoints`, so the breaker is replaced too: what is measured is
//! everything above the endpoints).
//!
//! Run with `cargo bench -p towermesh --bench client_stack`. Everything runs on one thread (a
//! current-thread tokio runtime, `block_on` per call), so divan's `AllocProfiler` counts every
//! allocation of a call. The machine is shared and noisy: compare the stack with `bare_service_fn`
//! (the same call and runtime, no stack) measured in the same run, as ratios.
//!
//! - `bare_service_fn`: `tower::service_fn` answering `200`, called with `oneshot`: the floor;
//! - `client_stack_default_telemetry`: `mesh::Client` with the library's defaults, i.e. the global
//!   tracer and meter, which are OpenTelemetry's no-op ones when an application installs none;
//! - `client_stack_sdk_telemetry`: the same with an SDK tracer that samples every request (as the
//!   sidecar's parent-based always-on default does for a request without a parent) and an SDK
//!   meter: what a service with telemetry on pays.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::task::{Context, Poll};

use divan::Bencher;
use http::{Request, Response};
use mesh::EndpointService;
use mesh_core::{Body, BoxError};
use mesh_observe::TraceConfig;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

/// Calls made before measuring: the balancer has discovered its endpoint and built its service,
/// the metric instruments exist.
const WARM_UP: usize = 100;

/// Calls per timed sample, the same for every row: divan would otherwise pick it per row, and a
/// row timed one call at a time (after one slow first sample) pays the timer's own overhead on
/// each call while another row spreads it over hundreds.
const SAMPLE_SIZE: u32 = 64;

fn main() {
    divan::main();
}

/// The endpoint service: `200` with an empty body at once, whatever the request.
#[derive(Clone, Copy, Debug)]
struct NoOpEndpoint;

impl<B> Service<Request<B>> for NoOpEndpoint {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Ready<Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        ready(Ok(Response::new(Body::empty())))
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A body-less `GET`, built outside the measured call.
fn request() -> Request<Body> {
    Request::get("http://reviews.test/api")
        .body(Body::empty())
        .unwrap()
}

/// A client over one no-op endpoint; `telemetry` adds an SDK tracer and meter.
fn client(telemetry: Option<(&SdkTracerProvider, &SdkMeterProvider)>) -> mesh::Client {
    let endpoint: SocketAddr = ([127, 0, 0, 1], 9).into();
    let mut builder = mesh::Client::builder()
        .endpoints([endpoint])
        .name("reviews")
        .seed(1)
        .wrap_endpoints(|_endpoint, _client| EndpointService::new(NoOpEndpoint));
    if let Some((tracer, meter)) = telemetry {
        let meter = meter.meter("client_stack");
        builder = builder
            .trace(TraceConfig::new().tracer(tracer.tracer("client_stack")))
            .meter(meter);
    }
    builder.build().unwrap()
}

/// Measures one `oneshot` call of a clone of the service `make` builds per iteration, after a
/// warm-up. The service is built inside the runtime: the balancer's discovery and its tasks live
/// in the runtime they are first used in.
fn measure<S>(bencher: Bencher<'_, '_>, make: impl FnOnce() -> S)
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone,
    S::Error: std::fmt::Debug,
{
    let rt = runtime();
    let service = rt.block_on(async {
        let service = make();
        for _ in 0..WARM_UP {
            service.clone().oneshot(request()).await.unwrap();
        }
        service
    });
    bencher
        .with_inputs(request)
        .bench_local_values(|req| rt.block_on(service.clone().oneshot(req)).unwrap());
}

#[divan::bench(sample_size = SAMPLE_SIZE)]
fn bare_service_fn(bencher: Bencher<'_, '_>) {
    measure(bencher, || {
        tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        })
    });
}

#[divan::bench(sample_size = SAMPLE_SIZE)]
fn client_stack_default_telemetry(bencher: Bencher<'_, '_>) {
    measure(bencher, || client(None));
}

#[divan::bench(sample_size = SAMPLE_SIZE)]
fn client_stack_sdk_telemetry(bencher: Bencher<'_, '_>) {
    let tracer = SdkTracerProvider::builder().build();
    let meter = SdkMeterProvider::builder()
        .with_reader(ManualReader::builder().build())
        .build();
    measure(bencher, || client(Some((&tracer, &meter))));
}
