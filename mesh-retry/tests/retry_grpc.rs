//! gRPC calls through the retry layer: every call is a `POST`, so the answers that say the call was
//! not processed (`UNAVAILABLE`, `RESOURCE_EXHAUSTED` with a pushback delay) are retried whatever
//! the method, still bounded by the budget and the replay buffer. Poll level, paused clock.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_retry::body::ReplayBody;
use mesh_retry::budget::{WindowBudget, WindowBudgetConfig};
use mesh_retry::retry::{ExponentialBackoff, Retry, RetryLayer, RetryPolicy};
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, ServiceExt};
use tower_test::mock;

type Body = ReplayBody<Full<Bytes>>;
type Handle = mock::Handle<Request<Body>, Response<()>>;
type Service = Retry<mock::Mock<Request<Body>, Response<()>>>;

/// The default policy (idempotent methods only), seeded and without backoff.
fn policy() -> RetryPolicy {
    RetryPolicy::default()
        .seed(42)
        .backoff(ExponentialBackoff::none())
}

fn setup(layer: RetryLayer) -> (Service, Handle) {
    let (mock, mut handle) = mock::pair();
    handle.allow(100);
    (layer.layer(mock), handle)
}

/// A unary gRPC call: a `POST` with a five-byte message frame.
fn call(body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::post("http://orders/orders.Orders/Place")
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

/// A trailers-only gRPC answer with `status` and, when given, a pushback.
fn grpc(status: &str, pushback: Option<&str>) -> Response<()> {
    let mut builder = Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .header("grpc-status", status);
    if let Some(pushback) = pushback {
        builder = builder.header("grpc-retry-pushback-ms", pushback);
    }
    builder.body(()).unwrap()
}

/// The next request the inner service received, if any, without waiting.
fn take(handle: &mut Handle) -> Option<(Request<Body>, mock::SendResponse<Response<()>>)> {
    match handle.poll_request() {
        std::task::Poll::Ready(request) => request,
        std::task::Poll::Pending => None,
    }
}

async fn body_of(request: Request<Body>) -> Bytes {
    request.into_body().collect().await.unwrap().to_bytes()
}

/// Sends `call()` through a layer with `policy`, answers the first attempt with `first`; returns
/// whether a second attempt was sent.
async fn retried_after(policy: RetryPolicy, first: Response<()>) -> bool {
    let (service, mut handle) = setup(RetryLayer::new(policy).unwrap());
    let mut future = task::spawn(service.oneshot(call(b"\0\0\0\0\0")));
    assert_pending!(future.poll());
    take(&mut handle).unwrap().1.send_response(first);
    let _ = future.poll();
    take(&mut handle).is_some()
}

#[tokio::test(start_paused = true)]
async fn unavailable_is_retried_for_a_post_with_the_default_policy() {
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap());
    let mut future = task::spawn(service.oneshot(call(b"\0\0\0\0\x01A")));
    assert_pending!(future.poll());
    let (first, send) = take(&mut handle).unwrap();
    assert_eq!(first.method(), Method::POST);
    assert_eq!(body_of(first).await, &b"\0\0\0\0\x01A"[..]);
    send.send_response(grpc("14", None));
    assert_pending!(future.poll());
    let (second, send) = take(&mut handle).expect("UNAVAILABLE is retried whatever the method");
    assert_eq!(body_of(second).await, &b"\0\0\0\0\x01A"[..]);
    send.send_response(grpc("0", None));
    let response = assert_ready!(future.poll()).unwrap();
    assert_eq!(response.headers()["grpc-status"], "0");
}

#[tokio::test(start_paused = true)]
async fn resource_exhausted_with_pushback_is_retried_after_the_delay() {
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap());
    let mut future = task::spawn(service.oneshot(call(b"\0\0\0\0\0")));
    assert_pending!(future.poll());
    take(&mut handle)
        .unwrap()
        .1
        .send_response(grpc("8", Some("300")));
    assert_pending!(future.poll());
    assert!(take(&mut handle).is_none(), "not before the pushback");
    tokio::time::advance(Duration::from_millis(299)).await;
    assert_pending!(future.poll());
    assert!(take(&mut handle).is_none(), "not before the pushback");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_pending!(future.poll());
    let (_, send) = take(&mut handle).expect("retried once the pushback is over");
    send.send_response(grpc("0", None));
    assert_eq!(
        assert_ready!(future.poll()).unwrap().headers()["grpc-status"],
        "0"
    );
}

#[tokio::test(start_paused = true)]
async fn other_answers_of_a_post_are_not_retried() {
    // RESOURCE_EXHAUSTED without pushback: a quota, not a request to come back.
    assert!(!retried_after(policy(), grpc("8", None)).await);
    // A pushback longer than max_server_delay (1 s) goes back to the caller.
    assert!(!retried_after(policy(), grpc("8", Some("1001"))).await);
    assert!(!retried_after(policy(), grpc("14", Some("1001"))).await);
    // The server forbade it.
    assert!(!retried_after(policy(), grpc("14", Some("-1"))).await);
    assert!(!retried_after(policy(), grpc("8", Some("soon"))).await);
    // INTERNAL may have been processed: idempotent requests only, even when in grpc_codes.
    let with_internal = policy().grpc_codes(
        mesh_core::classify::GrpcCodeSet::EMPTY
            .with(mesh_core::classify::GrpcCode::UNAVAILABLE)
            .with(mesh_core::classify::GrpcCode::INTERNAL),
    );
    assert!(!retried_after(with_internal.clone(), grpc("13", None)).await);
    assert!(retried_after(with_internal.idempotent_only(false), grpc("13", None)).await);
    // UNAVAILABLE taken out of grpc_codes is not retried at all.
    let without = policy().grpc_codes(mesh_core::classify::GrpcCodeSet::EMPTY);
    assert!(!retried_after(without, grpc("14", None)).await);
}

#[tokio::test(start_paused = true)]
async fn the_any_method_rule_can_be_turned_off() {
    let off = policy().retry_unprocessed_grpc(false);
    assert!(!retried_after(off.clone(), grpc("14", None)).await);
    assert!(!retried_after(off.clone(), grpc("8", Some("10"))).await);
    // Still retried for a POST the policy allows.
    let posts = off.retryable_methods([Method::POST]);
    assert!(retried_after(posts, grpc("14", None)).await);
}

#[tokio::test(start_paused = true)]
async fn unavailable_is_not_retried_past_the_replay_cap_or_the_budget() {
    // A body larger than the replay buffer is sent once.
    let (service, mut handle) = setup(RetryLayer::new(policy().replay_cap(4)).unwrap());
    let mut future = task::spawn(service.oneshot(call(b"\0\0\0\0\x02AB")));
    assert_pending!(future.poll());
    let (first, send) = take(&mut handle).unwrap();
    assert_eq!(body_of(first).await, &b"\0\0\0\0\x02AB"[..]);
    send.send_response(grpc("14", None));
    assert_eq!(
        assert_ready!(future.poll()).unwrap().headers()["grpc-status"],
        "14"
    );
    assert!(take(&mut handle).is_none());

    // An empty budget refuses the retry; the caller gets the UNAVAILABLE.
    let budget =
        WindowBudget::new(WindowBudgetConfig::default().ratio(0.0).min_per_sec(0)).unwrap();
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap().budget(budget));
    let mut future = task::spawn(service.oneshot(call(b"\0\0\0\0\0")));
    assert_pending!(future.poll());
    take(&mut handle).unwrap().1.send_response(grpc("14", None));
    assert_eq!(
        assert_ready!(future.poll()).unwrap().headers()["grpc-status"],
        "14"
    );
    assert!(take(&mut handle).is_none());
}

#[tokio::test(start_paused = true)]
async fn retryable_methods_extend_the_idempotent_ones() {
    let http = |method: Method| {
        Request::builder()
            .method(method)
            .uri("http://orders/items")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let policy = policy().retryable_methods([Method::POST]);
    assert!(policy.is_retryable(&http(Method::POST)));
    assert!(policy.is_retryable(&http(Method::GET)));
    assert!(!policy.is_retryable(&http(Method::PATCH)));
    assert_eq!(policy.get_retryable_methods(), [Method::POST]);

    let (service, mut handle) = setup(RetryLayer::new(policy).unwrap());
    let mut future = task::spawn(service.oneshot(http(Method::POST)));
    assert_pending!(future.poll());
    let unavailable = Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .body(())
        .unwrap();
    take(&mut handle).unwrap().1.send_response(unavailable);
    assert_pending!(future.poll());
    assert!(take(&mut handle).is_some(), "an allowed POST is retried");
}
