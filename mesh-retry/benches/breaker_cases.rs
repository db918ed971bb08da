//! Circuit breaker and limit cases for the `retry` bench binary (a module: `mod breaker_cases;`).
//!
//! - `breaker_admit_record`: a permit taken and a success recorded, on the shared handle;
//! - `breaker_service` vs `bare_service`: one request through `CircuitBreaker` (admit, call,
//!   classify, record when the body is dropped) against the inner service alone;
//! - `rate_limit_global` / `rate_limit_by_header`: one token-bucket check through `RateLimit`;
//! - `concurrency_limit`: one request through a fixed `ConcurrencyLimit` (permit held until the
//!   body is dropped).

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use divan::Bencher;
use http::header::HeaderName;
use http::{Request, Response};
use mesh_core::classify::Outcome;
use mesh_retry::breaker::{BreakerConfig, BreakerHandle, CircuitBreakerLayer};
use mesh_retry::limit::rate::HeaderKey;
use mesh_retry::limit::{
    ConcurrencyConfig, ConcurrencyLimitLayer, RateLimitConfig, RateLimitLayer,
};
use tower::Layer;
use tower_service::Service;

/// An inner service that answers `200 OK` with an empty body at once.
#[derive(Clone, Copy, Debug)]
struct Answer200;

impl<B> Service<Request<B>> for Answer200 {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        ready(Ok(Response::new(String::new())))
    }
}

/// Polls `service` ready, calls it, polls the future once (everything here is immediate) and
/// drops the response, which ends the body.
fn exchange<S, R>(service: &mut S, request: R)
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(Ok(response)) => drop(response),
        other => panic!(
            "expected an immediate answer, got {:?}",
            other.map(|r| r.err())
        ),
    }
}

fn breaker_config() -> BreakerConfig {
    BreakerConfig::new().seed(1)
}

#[divan::bench]
fn breaker_admit_record(bencher: Bencher<'_, '_>) {
    let handle = BreakerHandle::new(&breaker_config()).unwrap();
    bencher.bench_local(|| {
        let permit = handle.try_acquire().unwrap();
        permit.record(&Outcome::Success);
    });
}

#[divan::bench]
fn bare_service(bencher: Bencher<'_, '_>) {
    let mut svc = Answer200;
    bencher
        .with_inputs(|| Request::new(String::new()))
        .bench_local_values(|req| exchange(&mut svc, req));
}

#[divan::bench]
fn breaker_service(bencher: Bencher<'_, '_>) {
    let mut svc = CircuitBreakerLayer::new(breaker_config())
        .unwrap()
        .layer(Answer200);
    bencher
        .with_inputs(|| Request::new(String::new()))
        .bench_local_values(|req| exchange(&mut svc, req));
}

#[divan::bench]
fn rate_limit_global(bencher: Bencher<'_, '_>) {
    let layer = RateLimitLayer::new(RateLimitConfig::per_second(1e12).burst(u32::MAX)).unwrap();
    let mut svc = layer.layer(Answer200);
    bencher
        .with_inputs(|| Request::new(String::new()))
        .bench_local_values(|req| exchange(&mut svc, req));
}

#[divan::bench]
fn rate_limit_by_header(bencher: Bencher<'_, '_>) {
    let layer = RateLimitLayer::new(RateLimitConfig::per_second(1e12).burst(u32::MAX))
        .unwrap()
        .keyed_by(HeaderKey(HeaderName::from_static("x-tenant")));
    let mut svc = layer.layer(Answer200);
    let mut n = 0_u32;
    bencher
        .with_inputs(|| {
            n = (n + 1) % 100;
            Request::builder()
                .header("x-tenant", n)
                .body(String::new())
                .unwrap()
        })
        .bench_local_values(|req| exchange(&mut svc, req));
}

#[divan::bench]
fn concurrency_limit(bencher: Bencher<'_, '_>) {
    let layer = ConcurrencyLimitLayer::new(ConcurrencyConfig::fixed(1024)).unwrap();
    let mut svc = layer.layer(Answer200);
    bencher
        .with_inputs(|| Request::new(String::new()))
        .bench_local_values(|req| exchange(&mut svc, req));
}
