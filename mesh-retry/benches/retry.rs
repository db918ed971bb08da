//! Success-path cost of the retry layer against `tower::retry::Retry` with an equivalent policy,
//! of the hedge layer, of a budget deposit + withdraw, and (module `breaker_cases`) of breaker
//! admit + record and the concurrency and rate limits.
//!
//! Run with `cargo bench -p towermesh-retry --bench retry`. divan's `AllocProfiler` counts heap
//! allocations per iteration; request construction is outside the measured closure.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{Empty, Full};
use mesh_core::classify::{ClassifiedResponse, ClassifyResponse, MakeClassifier, MeshClassifier};
use mesh_retry::budget::{RetryBudget, TokenBucketBudget, WindowBudget};
use mesh_retry::retry::{RetryLayer, RetryPolicy};
use tower::Layer;
use tower::retry::budget::{Budget, TpsBudget};
use tower_service::Service;

mod breaker_cases;

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

/// An inner service that answers `200 OK` at once.
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

/// Polls `service` ready, calls it and polls the future once: everything here is immediate.
fn call_once<S, R>(service: &mut S, request: R) -> S::Response
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        _ => panic!("the inner service answers at once"),
    }
}

/// tower's retry with the same decisions on the success path: clone the request for a possible
/// retry, classify the response with the same classifier, stop on success. With `budget`, the
/// budget is used the way tower's `budget` module documents it (a deposit for each success, a
/// withdrawal before each retry): tower's `TpsBudget` with the settings of mesh-retry's default
/// `WindowBudget` (10 s, 10 retries per second, 20 %), which mesh-retry's layer always has.
#[derive(Clone, Debug)]
struct TowerPolicy {
    attempts_left: u32,
    budget: Option<Arc<TpsBudget>>,
}

impl<B: Clone> tower::retry::Policy<Request<B>, Response<()>, Infallible> for TowerPolicy {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        req: &mut Request<B>,
        result: &mut Result<Response<()>, Infallible>,
    ) -> Option<Ready<()>> {
        let Ok(response) = result else { return None };
        let classifier = MeshClassifier::new().make_classifier(req);
        match classifier.classify_response(response) {
            ClassifiedResponse::Ready(Err(_))
                if self.attempts_left > 1
                    && self.budget.as_ref().is_none_or(|budget| budget.withdraw()) =>
            {
                self.attempts_left -= 1;
                Some(ready(()))
            }
            ClassifiedResponse::Ready(Ok(())) => {
                if let Some(budget) = &self.budget {
                    budget.deposit();
                }
                None
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        let mut clone = Request::new(req.body().clone());
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.version_mut() = req.version();
        *clone.headers_mut() = req.headers().clone();
        *clone.extensions_mut() = req.extensions().clone();
        Some(clone)
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

fn put_1k() -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::PUT)
        .uri("http://orders.default.svc:8080/items/42")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(&[b'x'; 1024])))
        .unwrap()
}

fn ours() -> mesh_retry::retry::Retry<Ok200> {
    RetryLayer::new(RetryPolicy::default().seed(1))
        .unwrap()
        .layer(Ok200)
}

fn theirs() -> tower::retry::Retry<TowerPolicy, Ok200> {
    let policy = TowerPolicy {
        attempts_left: 3,
        budget: None,
    };
    tower::retry::Retry::new(policy, Ok200)
}

fn theirs_with_budget() -> tower::retry::Retry<TowerPolicy, Ok200> {
    let budget = TpsBudget::new(Duration::from_secs(10), 10, 0.2);
    let policy = TowerPolicy {
        attempts_left: 3,
        budget: Some(Arc::new(budget)),
    };
    tower::retry::Retry::new(policy, Ok200)
}

/// Every row of the comparison runs the same number of calls per timed sample (512), so the
/// timer's own overhead (two clock reads, tens of nanoseconds on a VM) is spread equally over
/// each row. Left to itself, divan picks the size per row, and one slow first sample can leave a
/// row timed a call at a time while another is timed 800 at a time: the medians then differ by
/// the timer's cost, not the layer's.
#[divan::bench_group(sample_size = 512)]
mod success_path {
    use super::*;

    /// The inner service alone, called the same way: what every row below pays besides its
    /// retry layer (the call, the request's drop, the harness), so a layer's own cost is its row
    /// less this one.
    #[divan::bench]
    fn get_bare_service(bencher: divan::Bencher<'_, '_>) {
        let mut service = Ok200;
        bencher
            .with_inputs(get)
            .bench_local_values(|req| call_once(&mut service, req));
    }

    /// A GET with an empty body answered 200 (the request is built outside the measurement).
    #[divan::bench]
    fn get_mesh_retry(bencher: divan::Bencher<'_, '_>) {
        let mut service = ours();
        bencher
            .with_inputs(get)
            .bench_local_values(|req| call_once(&mut service, req));
    }

    /// The same with [`RetryPolicy::avoid_tried_endpoints`] off: no `TriedEndpoints`
    /// record in the request (what that record costs).
    #[divan::bench]
    fn get_mesh_retry_no_tried_record(bencher: divan::Bencher<'_, '_>) {
        let policy = RetryPolicy::default().seed(1).avoid_tried_endpoints(false);
        let mut service = RetryLayer::new(policy).unwrap().layer(Ok200);
        bencher
            .with_inputs(get)
            .bench_local_values(|req| call_once(&mut service, req));
    }

    /// The same with a policy allowing one attempt: no template, no record, no replay copy.
    #[divan::bench]
    fn get_mesh_retry_single_attempt(bencher: divan::Bencher<'_, '_>) {
        let policy = RetryPolicy::default().seed(1).max_attempts(1);
        let mut service = RetryLayer::new(policy).unwrap().layer(Ok200);
        bencher
            .with_inputs(get)
            .bench_local_values(|req| call_once(&mut service, req));
    }

    /// The same through `tower::retry::Retry`.
    #[divan::bench]
    fn get_tower_retry(bencher: divan::Bencher<'_, '_>) {
        let mut service = theirs();
        bencher
            .with_inputs(get)
            .bench_local_values(|req| call_once(&mut service, req));
    }

    /// The same through `tower::retry::Retry` with tower's `TpsBudget` (mesh-retry's layer always
    /// has a budget: this is the like-for-like row).
    #[divan::bench]
    fn get_tower_retry_tps_budget(bencher: divan::Bencher<'_, '_>) {
        let mut service = theirs_with_budget();
        bencher
            .with_inputs(get)
            .bench_local_values(|req| call_once(&mut service, req));
    }

    /// A PUT with a 1 KiB body that the inner service does not read (ours sets up the replay
    /// buffer; tower's policy clones the `Full` body).
    #[divan::bench]
    fn put_1k_mesh_retry(bencher: divan::Bencher<'_, '_>) {
        let mut service = ours();
        bencher
            .with_inputs(put_1k)
            .bench_local_values(|req| call_once(&mut service, req));
    }

    /// The same through `tower::retry::Retry`.
    #[divan::bench]
    fn put_1k_tower_retry(bencher: divan::Bencher<'_, '_>) {
        let mut service = theirs();
        bencher
            .with_inputs(put_1k)
            .bench_local_values(|req| call_once(&mut service, req));
    }

    /// The same with tower's `TpsBudget`.
    #[divan::bench]
    fn put_1k_tower_retry_tps_budget(bencher: divan::Bencher<'_, '_>) {
        let mut service = theirs_with_budget();
        bencher
            .with_inputs(put_1k)
            .bench_local_values(|req| call_once(&mut service, req));
    }
}

mod hedge {

    use mesh_retry::hedge::{HedgeConfig, HedgeDelay, HedgeLayer};

    use super::*;

    /// A GET answered at once through the hedge layer (fixed 50 ms delay, so the timer is armed
    /// but never fires). A tokio runtime is entered because the timer needs its clock.
    #[divan::bench]
    fn get_mesh_hedge(bencher: divan::Bencher<'_, '_>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let layer = HedgeLayer::new(
            HedgeConfig::default().delay(HedgeDelay::Fixed(Duration::from_millis(50))),
        )
        .unwrap();
        let mut service = layer.layer(Ok200);
        bencher
            .with_inputs(get)
            .bench_local_values(|req| call_once(&mut service, req));
    }
}

mod budget {
    use super::*;

    /// One request deposited and one retry withdrawn from the default sliding-window budget.
    #[divan::bench]
    fn window_deposit_withdraw(bencher: divan::Bencher<'_, '_>) {
        let budget = WindowBudget::default();
        bencher.bench_local(|| {
            budget.deposit();
            divan::black_box(budget.withdraw())
        });
    }

    /// Baseline: one read of the clock the window budget uses (it reads it on every call).
    #[divan::bench]
    fn clock_read_baseline() -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    /// Baseline: one read of the OS monotonic clock, to tell the cost of the clock itself from
    /// what tokio's clock (with the `test-util` feature the dev-dependencies turn on) adds to it.
    #[divan::bench]
    fn clock_read_std_baseline() -> std::time::Instant {
        std::time::Instant::now()
    }

    /// One outcome recorded and one retry asked of the gRPC token bucket.
    #[divan::bench]
    fn token_bucket_record_withdraw(bencher: divan::Bencher<'_, '_>) {
        let budget = TokenBucketBudget::default();
        bencher.bench_local(|| {
            budget.record(true);
            divan::black_box(budget.withdraw())
        });
    }
}
