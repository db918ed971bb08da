//! Heap allocations per call of the retry layer on the success path, counted by a counting global
//! allocator. The counts are deterministic (the same code path allocates the same way every time),
//! so they are asserted as upper bounds: a change that makes the success path allocate more fails
//! here. Timing lives in the benchmarks (`benches/retry.rs`), never in tests.
//!
//! One test function only: the allocator counts every thread, and the test harness runs the
//! tests of one binary on several threads.

use std::alloc::System;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{Empty, Full};
use mesh_retry::retry::{RetryLayer, RetryPolicy};
use mesh_retry::timeout::Deadline;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::Layer;
use tower_service::Service;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// An inner service that answers `200 OK` at once and allocates nothing.
#[derive(Clone, Copy, Debug)]
struct Ok200;

impl<B> Service<Request<B>> for Ok200 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        ready(Ok(Response::new(())))
    }
}

fn get() -> Request<Empty<Bytes>> {
    Request::builder()
        .method(Method::GET)
        .uri("http://orders.default.svc:8080/items/42")
        .header("accept", "application/json")
        .body(Empty::new())
        .unwrap()
}

/// The GET as the timeout layer above retry leaves it: a [`Deadline`] its only extension.
fn get_with_deadline() -> Request<Empty<Bytes>> {
    let mut request = get();
    request
        .extensions_mut()
        .insert(Deadline::after(Duration::from_secs(10)));
    request
}

fn put_1k() -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::PUT)
        .uri("http://orders.default.svc:8080/items/42")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(&[b'x'; 1024])))
        .unwrap()
}

/// Allocations made by one call (poll ready, call, poll the future, drop the response) of
/// `service` with a request `make` builds before counting starts. The service has been called
/// once before, so instruments and lazily made state exist.
fn allocations<S, R>(service: &mut S, make: impl Fn() -> R) -> usize
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    let mut call = |request: R| {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(service.poll_ready(&mut cx).is_ready());
        let future = pin!(service.call(request));
        match future.poll(&mut cx) {
            Poll::Ready(Ok(response)) => drop(response),
            _ => panic!("the inner service answers at once"),
        }
    };
    call(make());
    let request = make();
    let region = Region::new(GLOBAL);
    call(request);
    region.change().allocations + region.change().reallocations
}

fn retry(
    policy: RetryPolicy,
) -> impl Service<Request<Empty<Bytes>>, Error = mesh_core::BoxError>
+ Service<Request<Full<Bytes>>, Error = mesh_core::BoxError> {
    RetryLayer::new(policy.seed(1)).unwrap().layer(Ok200)
}

#[test]
fn the_success_path_allocates_only_what_a_retry_needs() {
    // A GET that may be retried: the head is copied once for the attempt (its headers, as one
    // boxed slice: 1, and the header value's bytes turned shared: 1); tower's retry pays 3 for
    // its clone (a `HeaderMap` clone is 2; 3 here too before the slice). Nothing is added to the
    // first attempt's extensions (retries carry a zero-sized marker); 7 before, when a shared
    // tried-endpoints record went into every request (the record, its box and the extensions'
    // map: 4).
    let get_retryable = allocations(&mut retry(RetryPolicy::default()), get);
    assert!(get_retryable <= 2, "GET, 3 attempts: {get_retryable}");

    // A request whose only extension is its deadline costs nothing more: the first attempt
    // takes the caller's extensions, and the copy kept for retries leaves the deadline aside
    // (put back on a retry). 6 before, when the copy cloned the extension map (its box and
    // table: 2) and the deadline in it (1).
    let get_deadline = allocations(&mut retry(RetryPolicy::default()), get_with_deadline);
    assert_eq!(get_deadline, get_retryable, "GET with a deadline");

    // Turning the marker off changes nothing on the success path.
    let get_no_record = allocations(
        &mut retry(RetryPolicy::default().avoid_tried_endpoints(false)),
        get,
    );
    assert_eq!(get_no_record, get_retryable, "GET, marker off");

    // A single attempt allowed: no template, no record, no replay copy of the body.
    let single = RetryPolicy::default().max_attempts(1);
    let get_single = allocations(&mut retry(single.clone()), get);
    assert_eq!(get_single, 0, "GET, one attempt");
    let put_single = allocations(&mut retry(single), put_1k);
    assert_eq!(put_single, 0, "PUT with a body, one attempt");

    // A body that may be replayed costs its shared buffer on top of the GET's.
    let put_retryable = allocations(&mut retry(RetryPolicy::default()), put_1k);
    eprintln!(
        "allocations per call: GET {get_retryable}, GET with a deadline {get_deadline}, \
         GET with the marker off {get_no_record}, \
         GET one attempt {get_single}, PUT {put_retryable}, PUT one attempt {put_single}"
    );
    // 5 before the headers were copied as one slice, 9 before the tried-endpoints record went.
    assert!(put_retryable <= 4, "PUT, 3 attempts: {put_retryable}");
    assert!(put_retryable > get_retryable);
}
