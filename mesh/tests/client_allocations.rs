//! Heap allocations of `mesh::Client` per call, counted by a counting global allocator: the
//! client over one endpoint whose service answers `200` at once (the set-up of
//! `benches/client_stack.rs`), with the library's default telemetry (OpenTelemetry's no-op
//! tracer and meter). The counts are deterministic, so they are asserted as upper bounds; timing
//! lives in the benchmark.
//!
//! One test function only: the allocator counts every thread, and the test harness runs the
//! tests of one binary on several threads.

use std::alloc::System;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::{Request, Response};
use mesh::EndpointService;
use mesh_core::{Body, BoxError};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Service, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The endpoint service: `200` with an empty body at once.
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

fn request() -> Request<Body> {
    Request::get("http://reviews.test/api")
        .body(Body::empty())
        .unwrap()
}

fn count(f: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    let change = region.change();
    change.allocations + change.reallocations
}

#[test]
fn a_call_allocates_a_bounded_number_of_times_and_a_clone_none() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let endpoint: SocketAddr = ([127, 0, 0, 1], 9).into();
    let client = rt.block_on(async {
        let client = mesh::Client::builder()
            .endpoints([endpoint])
            .name("reviews")
            .seed(1)
            .wrap_endpoints(|_endpoint, _client| EndpointService::new(NoOpEndpoint))
            .build()
            .unwrap();
        // The balancer discovers its endpoint and builds its service; instruments are made.
        for _ in 0..100 {
            client.clone().oneshot(request()).await.unwrap();
        }
        client
    });

    // A clone shares the assembled stack: nothing is copied.
    let mut clones = Vec::with_capacity(1);
    assert_eq!(count(|| clones.push(client.clone())), 0, "Client::clone");
    drop(clones);

    let req = request();
    let oneshot = count(|| {
        rt.block_on(client.clone().oneshot(req)).unwrap();
    });
    eprintln!("allocations per call through oneshot: {oneshot}");
    // 4 now (the target for the client stack is 4): the box holding the retry layer's
    // future (see `mesh::ResponseFuture`: it saves more in copies than it costs), the
    // retry layer's copy of the request's headers (one boxed slice: the `traceparent` the trace
    // layer added), that `traceparent` value, and this test's boxed endpoint future. 3 while the
    // stack's future was held inline; 9 before the timeout layer
    // handed its deadline to the retry layer directly (it used to put it in the extensions,
    // creating the map: 3) and the retry layer copied the headers as one slice (a `HeaderMap`
    // clone: 2); 12 before the client's response future held the stack's `Oneshot` inline and
    // the retry layer stopped putting a shared tried-endpoints record in every request (16 when
    // a bound was first set). A change that adds one fails here.
    assert!(
        oneshot <= 4,
        "a call through oneshot: {oneshot} allocations"
    );

    // Calling without polling readiness (an axum handler, tonic) costs the same.
    let req = request();
    let mut caller = client.clone();
    let direct = count(|| {
        rt.block_on(caller.call(req)).unwrap();
    });
    assert_eq!(direct, oneshot, "call without poll_ready");

    // Through a shared reference (a router's table of clients): the same, with no clone.
    let req = request();
    let by_reference = count(|| {
        rt.block_on(client.request(req)).unwrap();
    });
    assert_eq!(by_reference, oneshot, "Client::request");
}
