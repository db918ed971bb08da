//! Poll-level tests of the retry layer, with `tower_test::mock` and a paused clock.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_core::error::{ConnectError, PoolExhausted, UpstreamError, find_cause};
use mesh_retry::body::ReplayBody;
use mesh_retry::budget::{WindowBudget, WindowBudgetConfig};
use mesh_retry::retry::{ExponentialBackoff, Retry, RetryLayer, RetryPolicy, Retryable};
use mesh_retry::timeout::Deadline;
use mesh_test::response::status;
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, ServiceExt};
use tower_test::mock;

type Body = ReplayBody<Full<Bytes>>;
type Handle = mock::Handle<Request<Body>, Response<()>>;
type Service = Retry<mock::Mock<Request<Body>, Response<()>>>;

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

fn request(method: Method, body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("http://orders/items")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// A `status` response asking the client to wait `seconds` before retrying.
fn retry_after(status: u16, seconds: &str) -> Response<()> {
    Response::builder()
        .status(status)
        .header("retry-after", seconds)
        .body(())
        .unwrap()
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

#[tokio::test(start_paused = true)]
async fn success_is_returned_without_retry() {
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap());
    let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
    assert_pending!(future.poll());
    let (_, send) = take(&mut handle).expect("first attempt");
    send.send_response(status(200));
    let response = assert_ready!(future.poll()).unwrap();
    assert_eq!(response.status(), 200);
    assert!(take(&mut handle).is_none());
}

#[tokio::test(start_paused = true)]
async fn server_error_is_retried_with_the_same_body() {
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap());
    let mut future = task::spawn(service.oneshot(request(Method::PUT, "payload")));
    assert_pending!(future.poll());
    let (first, send) = take(&mut handle).unwrap();
    assert_eq!(body_of(first).await, "payload");
    send.send_response(status(503));
    assert_pending!(future.poll());
    let (second, send) = take(&mut handle).expect("a retry");
    assert_eq!(second.method(), Method::PUT);
    assert_eq!(second.uri(), "http://orders/items");
    assert_eq!(body_of(second).await, "payload");
    send.send_response(status(200));
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn max_attempts_bound_the_retries_and_the_last_failure_is_returned() {
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap());
    let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
    for code in [500, 502, 504] {
        assert_pending!(future.poll());
        let (_, send) = take(&mut handle).expect("an attempt");
        send.send_response(status(code));
    }
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 504);
    assert!(take(&mut handle).is_none());
}

#[tokio::test(start_paused = true)]
async fn status_outside_the_set_is_not_retried() {
    let (service, mut handle) =
        setup(RetryLayer::new(policy().retry_statuses([StatusCode::BAD_GATEWAY])).unwrap());
    let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
    assert_pending!(future.poll());
    take(&mut handle).unwrap().1.send_response(status(500));
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 500);
    assert!(take(&mut handle).is_none());
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_out() {
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap());
    let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
    assert_pending!(future.poll());
    let busy = retry_after(429, "1");
    take(&mut handle).unwrap().1.send_response(busy);
    assert_pending!(future.poll());
    tokio::time::advance(Duration::from_millis(999)).await;
    assert_pending!(future.poll());
    assert!(
        take(&mut handle).is_none(),
        "retried before the server's delay"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_pending!(future.poll());
    take(&mut handle)
        .expect("retried after the delay")
        .1
        .send_response(status(200));
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn retry_after_above_the_cap_is_returned_at_once() {
    let (service, mut handle) =
        setup(RetryLayer::new(policy().max_server_delay(Duration::from_secs(2))).unwrap());
    let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
    assert_pending!(future.poll());
    let busy = retry_after(503, "3");
    take(&mut handle).unwrap().1.send_response(busy);
    let response = assert_ready!(future.poll()).unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "3");
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_request_is_not_retried() {
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap());
    let mut future = task::spawn(service.oneshot(request(Method::POST, "order")));
    assert_pending!(future.poll());
    take(&mut handle).unwrap().1.send_response(status(503));
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 503);
    assert!(take(&mut handle).is_none());
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_request_marked_by_extension_is_retried() {
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap());
    let mut req = request(Method::POST, "order");
    req.extensions_mut().insert(Retryable);
    let mut future = task::spawn(service.oneshot(req));
    assert_pending!(future.poll());
    take(&mut handle).unwrap().1.send_response(status(503));
    assert_pending!(future.poll());
    let (second, send) = take(&mut handle).expect("a retry");
    assert!(second.extensions().get::<Retryable>().is_some());
    assert_eq!(body_of(second).await, "order");
    send.send_response(status(201));
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 201);
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_request_marked_by_header_is_retried() {
    let name = HeaderName::from_static("x-idempotency-key");
    let (service, mut handle) = setup(RetryLayer::new(policy().retryable_header(name)).unwrap());
    let mut req = request(Method::POST, "order");
    req.headers_mut()
        .insert("x-idempotency-key", "abc".parse().unwrap());
    let mut future = task::spawn(service.oneshot(req));
    assert_pending!(future.poll());
    take(&mut handle).unwrap().1.send_response(status(502));
    assert_pending!(future.poll());
    take(&mut handle)
        .expect("a retry")
        .1
        .send_response(status(200));
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn never_sent_requests_are_always_retried() {
    let errors: [fn() -> mesh_core::BoxError; 3] = [
        || ConnectError::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)).into(),
        || UpstreamError::unsent("REFUSED_STREAM").into(),
        // The endpoint's HTTP/1.1 pool stayed full for the pool wait: nothing was sent.
        || PoolExhausted::new().into(),
    ];
    for make_error in errors {
        let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap());
        let mut future = task::spawn(service.oneshot(request(Method::POST, "order")));
        assert_pending!(future.poll());
        take(&mut handle).unwrap().1.send_error(make_error());
        assert_pending!(future.poll());
        let (second, send) = take(&mut handle).expect("a never-sent POST is retried");
        assert_eq!(body_of(second).await, "order");
        send.send_response(status(200));
        assert_eq!(assert_ready!(future.poll()).unwrap().status(), 200);
    }
}

#[tokio::test(start_paused = true)]
async fn a_sent_non_idempotent_request_that_failed_is_not_retried() {
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap());
    let mut future = task::spawn(service.oneshot(request(Method::POST, "order")));
    assert_pending!(future.poll());
    take(&mut handle)
        .unwrap()
        .1
        .send_error(UpstreamError::new("connection reset"));
    let error = assert_ready!(future.poll()).unwrap_err();
    assert!(find_cause::<UpstreamError>(&*error).is_some());
    assert!(take(&mut handle).is_none());
}

#[tokio::test(start_paused = true)]
async fn exhausted_budget_returns_the_original_failure() {
    let empty = WindowBudget::new(WindowBudgetConfig::default().ratio(0.0).min_per_sec(0)).unwrap();
    // A response…
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap().budget(empty.clone()));
    let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
    assert_pending!(future.poll());
    take(&mut handle).unwrap().1.send_response(status(503));
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 503);
    assert!(take(&mut handle).is_none());
    // …and an error come back as they were.
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap().budget(empty.clone()));
    let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
    assert_pending!(future.poll());
    take(&mut handle)
        .unwrap()
        .1
        .send_error(ConnectError::new("refused"));
    let error = assert_ready!(future.poll()).unwrap_err();
    assert!(find_cause::<ConnectError>(&*error).is_some());
    assert!(take(&mut handle).is_none());
    assert_eq!(empty.requests(), 2);
    assert_eq!(empty.retries(), 0);
}

#[tokio::test(start_paused = true)]
async fn budget_is_shared_by_every_service_of_a_layer() {
    let budget = WindowBudget::new(
        WindowBudgetConfig::default()
            .ratio(0.0)
            .min_per_sec(1)
            .window(Duration::from_secs(1))
            .slots(1),
    )
    .unwrap();
    let layer = RetryLayer::new(policy()).unwrap().budget(budget.clone());
    let mut retried = 0;
    for _ in 0..2 {
        let (service, mut handle) = setup(layer.clone());
        let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
        assert_pending!(future.poll());
        take(&mut handle).unwrap().1.send_response(status(503));
        if future.poll().is_pending() {
            retried += 1;
            take(&mut handle).unwrap().1.send_response(status(200));
            assert_ready!(future.poll()).unwrap();
        }
    }
    assert_eq!(
        retried, 1,
        "one retry per second for both services together"
    );
    assert_eq!(budget.retries(), 1);
}

#[tokio::test(start_paused = true)]
async fn per_try_timeout_cancels_the_attempt_and_retries() {
    let (service, mut handle) =
        setup(RetryLayer::new(policy().per_try_timeout(Some(Duration::from_millis(100)))).unwrap());
    let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
    assert_pending!(future.poll());
    let (_, first) = take(&mut handle).unwrap();
    tokio::time::advance(Duration::from_millis(99)).await;
    assert_pending!(future.poll());
    assert!(take(&mut handle).is_none());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_pending!(future.poll());
    let (_, second) = take(&mut handle).expect("a retry after the per-try timeout");
    // The first attempt was cancelled: answering it changes nothing.
    first.send_response(status(200));
    assert_pending!(future.poll());
    second.send_response(status(202));
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 202);
}

#[tokio::test(start_paused = true)]
async fn per_try_timeouts_exhausting_attempts_give_a_timeout_error() {
    let (service, mut handle) = setup(
        RetryLayer::new(
            policy()
                .per_try_timeout(Some(Duration::from_millis(100)))
                .max_attempts(2),
        )
        .unwrap(),
    );
    let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
    let mut unanswered = Vec::new();
    for _ in 0..2 {
        assert_pending!(future.poll());
        // Kept alive: a dropped responder would fail the attempt instead of letting it hang.
        unanswered.push(take(&mut handle).expect("an attempt"));
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    let error = assert_ready!(future.poll()).unwrap_err();
    assert!(error.is::<mesh_core::error::Timeout>());
}

#[tokio::test(start_paused = true)]
async fn backoff_is_jittered_below_its_ceiling() {
    let backoff =
        ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(1)).unwrap();
    let (service, mut handle) = setup(RetryLayer::new(policy().backoff(backoff)).unwrap());
    let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
    assert_pending!(future.poll());
    take(&mut handle).unwrap().1.send_response(status(503));
    assert_pending!(future.poll());
    let start = tokio::time::Instant::now();
    let mut waited = Duration::ZERO;
    while take(&mut handle).is_none() {
        assert!(
            waited <= Duration::from_millis(100),
            "waited above the first ceiling"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        waited = start.elapsed();
        let _ = future.poll();
    }
}

#[tokio::test(start_paused = true)]
async fn grpc_trailers_only_unavailable_is_retried_but_trailer_status_is_not() {
    let grpc = |status: Option<&str>| {
        let mut builder = Response::builder()
            .status(200)
            .header("content-type", "application/grpc");
        if let Some(status) = status {
            builder = builder.header("grpc-status", status);
        }
        builder.body(()).unwrap()
    };
    let call = || {
        Request::post("http://orders/orders.Orders/Get")
            .header("content-type", "application/grpc")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
            .unwrap()
    };
    // Trailers-only UNAVAILABLE: retried (whatever the method; see tests/retry_grpc.rs).
    let (service, mut handle) = setup(RetryLayer::new(policy().idempotent_only(false)).unwrap());
    let mut future = task::spawn(service.oneshot(call()));
    assert_pending!(future.poll());
    take(&mut handle).unwrap().1.send_response(grpc(Some("14")));
    assert_pending!(future.poll());
    take(&mut handle).unwrap().1.send_response(grpc(None));
    // Status in the trailers: returned as is (the body would stream to the caller).
    let response = assert_ready!(future.poll()).unwrap();
    assert!(response.headers().get("grpc-status").is_none());
    assert!(take(&mut handle).is_none());
}

#[tokio::test(start_paused = true)]
async fn negative_pushback_is_never_retried() {
    let (service, mut handle) = setup(RetryLayer::new(policy().idempotent_only(false)).unwrap());
    let req = Request::post("http://orders/orders.Orders/Get")
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut future = task::spawn(service.oneshot(req));
    assert_pending!(future.poll());
    let response = Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", "14")
        .header("grpc-retry-pushback-ms", "-1")
        .body(())
        .unwrap();
    take(&mut handle).unwrap().1.send_response(response);
    assert_eq!(
        assert_ready!(future.poll()).unwrap().headers()["grpc-status"],
        "14"
    );
    assert!(take(&mut handle).is_none());
}

#[tokio::test(start_paused = true)]
async fn body_beyond_the_cap_is_sent_once_and_not_retried() {
    let (service, mut handle) = setup(RetryLayer::new(policy().replay_cap(4)).unwrap());
    let mut future = task::spawn(service.oneshot(request(Method::PUT, "too long")));
    assert_pending!(future.poll());
    let (first, send) = take(&mut handle).unwrap();
    assert_eq!(body_of(first).await, "too long");
    send.send_response(status(503));
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 503);
    assert!(take(&mut handle).is_none());
}

#[tokio::test(start_paused = true)]
async fn attempt_dropped_mid_body_is_replayed_whole() {
    let chunks = chunked(&["one ", "two ", "three"]);
    let req = Request::put("http://orders/items").body(chunks).unwrap();
    let (mock, mut inner) = mock::pair::<Request<ReplayBody<Chunked>>, Response<()>>();
    inner.allow(10);
    let service = RetryLayer::new(policy()).unwrap().layer(mock);
    let mut future = task::spawn(service.oneshot(req));
    assert_pending!(future.poll());
    let std::task::Poll::Ready(Some((first, send))) = inner.poll_request() else {
        panic!("no first attempt");
    };
    // The server reads one frame, then answers 503 without reading the rest.
    let mut body = first.into_body();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "one ");
    drop(body);
    send.send_response(status(503));
    assert_pending!(future.poll());
    let std::task::Poll::Ready(Some((second, send))) = inner.poll_request() else {
        panic!("no retry");
    };
    let bytes = second.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes, "one two three");
    send.send_response(status(200));
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn no_retry_that_would_end_past_the_deadline() {
    let backoff = ExponentialBackoff::new(Duration::from_secs(1), Duration::from_secs(1)).unwrap();
    let (service, mut handle) = setup(RetryLayer::new(policy().backoff(backoff)).unwrap());
    let mut req = request(Method::GET, "");
    req.extensions_mut()
        .insert(Deadline::after(Duration::from_millis(1)));
    let mut future = task::spawn(service.oneshot(req));
    assert_pending!(future.poll());
    // Jitter may pick a short delay with the seed; the overloaded response forces 1 s.
    let busy = retry_after(503, "1");
    take(&mut handle).unwrap().1.send_response(busy);
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 503);
}

#[tokio::test(start_paused = true)]
async fn retry_refreshes_grpc_timeout_from_the_deadline() {
    let (service, mut handle) = setup(RetryLayer::new(policy().idempotent_only(false)).unwrap());
    let mut req = Request::post("http://orders/orders.Orders/Get")
        .header("content-type", "application/grpc")
        .header("grpc-timeout", "1S")
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.extensions_mut()
        .insert(Deadline::after(Duration::from_secs(1)));
    let mut future = task::spawn(service.oneshot(req));
    assert_pending!(future.poll());
    tokio::time::advance(Duration::from_millis(400)).await;
    take(&mut handle)
        .unwrap()
        .1
        .send_error(ConnectError::new("refused"));
    assert_pending!(future.poll());
    let (second, _send) = take(&mut handle).unwrap();
    assert_eq!(second.headers()["grpc-timeout"], "600000u");
}

/// A timeout layer that hands its deadline to the retry layer directly: no attempt carries a
/// `Deadline` extension (the first attempt of a request without extensions has none at all), yet
/// the retry layer uses it: a gRPC retry's `grpc-timeout` is what the deadline leaves, and a retry
/// whose backoff would end past it is not started.
#[tokio::test(start_paused = true)]
async fn a_deadline_handed_directly_is_used_and_never_put_in_the_extensions() {
    use mesh_retry::timeout::{RequestTimeoutLayer, TimeoutConfig};
    let timeout =
        RequestTimeoutLayer::new(TimeoutConfig::default().timeout(Some(Duration::from_secs(1))))
            .hand_deadline_directly();
    let (retry, mut handle) = setup(RetryLayer::new(policy().idempotent_only(false)).unwrap());
    let service = timeout.layer(retry);

    let req = Request::post("http://orders/orders.Orders/Get")
        .header("content-type", "application/grpc")
        .header("grpc-timeout", "5S")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut future = task::spawn(service.clone().oneshot(req));
    assert_pending!(future.poll());
    let (first, send) = take(&mut handle).unwrap();
    assert_eq!(first.extensions().len(), 0);
    // The layer's 1 s caps the caller's 5 s.
    assert_eq!(first.headers()["grpc-timeout"], "1000000u");
    tokio::time::advance(Duration::from_millis(400)).await;
    send.send_error(ConnectError::new("refused"));
    assert_pending!(future.poll());
    let (second, send) = take(&mut handle).expect("a retry");
    assert_eq!(second.headers()["grpc-timeout"], "600000u");
    assert!(second.extensions().get::<Deadline>().is_none());
    send.send_response(status(200));
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 200);

    // A retry whose 1 s backoff would end past the deadline is not started.
    let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
    assert_pending!(future.poll());
    let busy = retry_after(503, "1");
    take(&mut handle).unwrap().1.send_response(busy);
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 503);
    assert!(take(&mut handle).is_none());
}

// ----- a body that yields given chunks one poll at a time -----

#[derive(Debug)]
struct Chunked(std::collections::VecDeque<Bytes>);

fn chunked(chunks: &[&'static str]) -> Chunked {
    Chunked(
        chunks
            .iter()
            .map(|c| Bytes::from_static(c.as_bytes()))
            .collect(),
    )
}

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

#[tokio::test(start_paused = true)]
async fn retries_are_marked_to_avoid_tried_endpoints_and_the_first_attempt_is_not() {
    use mesh_core::attempts::{AvoidTried, TriedEndpoints};
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap());
    let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
    assert_pending!(future.poll());
    let (first, send) = take(&mut handle).unwrap();
    // A request answered at once carries nothing extra.
    assert!(first.extensions().get::<AvoidTried>().is_none());
    assert!(first.extensions().get::<TriedEndpoints>().is_none());
    send.send_response(status(503));
    assert_pending!(future.poll());
    let (second, send) = take(&mut handle).expect("a retry");
    assert!(
        second.extensions().get::<AvoidTried>().is_some(),
        "a retry tells the balancer to avoid where the earlier attempts went"
    );
    send.send_response(status(503));
    assert_pending!(future.poll());
    let (third, send) = take(&mut handle).expect("a second retry");
    assert!(third.extensions().get::<AvoidTried>().is_some());
    send.send_response(status(503));
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 503);
}

#[tokio::test(start_paused = true)]
async fn turned_off_retries_carry_no_marker() {
    use mesh_core::attempts::AvoidTried;
    let (service, mut handle) =
        setup(RetryLayer::new(policy().avoid_tried_endpoints(false)).unwrap());
    let mut future = task::spawn(service.oneshot(request(Method::GET, "")));
    assert_pending!(future.poll());
    let (first, send) = take(&mut handle).unwrap();
    assert!(first.extensions().get::<AvoidTried>().is_none());
    send.send_response(status(503));
    assert_pending!(future.poll());
    let (retry, send) = take(&mut handle).expect("a retry");
    assert!(retry.extensions().get::<AvoidTried>().is_none());
    send.send_response(status(200));
    assert_eq!(assert_ready!(future.poll()).unwrap().status(), 200);
}

#[test]
fn an_out_of_range_max_attempts_is_refused_when_the_layer_is_built() {
    for attempts in [0, 11] {
        let policy = RetryPolicy::default().max_attempts(attempts);
        let err = policy.validate().unwrap_err();
        assert_eq!(err.key(), "max_attempts");
        assert_eq!(
            err.to_string(),
            "invalid `max_attempts`: must be between 1 and 10"
        );
        assert_eq!(RetryLayer::new(policy).unwrap_err(), err);
    }
    let policy = RetryPolicy::default().max_attempts(10);
    assert_eq!(
        RetryLayer::new(policy).unwrap().policy().get_max_attempts(),
        10
    );
}

/// `RetryLimit` (Envoy's `max_retries`): with one retry in flight and a bound of 1, a second
/// request's failure is returned as it is; once the first retry has its outcome, retries are
/// allowed again, and `set_max` changes the bound live.
#[tokio::test(start_paused = true)]
async fn the_retry_limit_bounds_retries_in_flight_across_requests() {
    use mesh_retry::retry::RetryLimit;
    let limit = RetryLimit::new(1);
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap().limit(limit.clone()));

    // Request A fails once: its retry takes the one slot and is in flight.
    let mut a = task::spawn(service.clone().oneshot(request(Method::GET, "")));
    assert_pending!(a.poll());
    let (_, send) = take(&mut handle).expect("A's first attempt");
    send.send_response(status(503));
    assert_pending!(a.poll());
    let (_, a_retry) = take(&mut handle).expect("A's retry");
    assert_eq!(limit.in_flight(), 1);

    // Request B fails meanwhile: no slot, so its 503 comes back without a retry.
    let mut b = task::spawn(service.clone().oneshot(request(Method::GET, "")));
    assert_pending!(b.poll());
    let (_, send) = take(&mut handle).expect("B's first attempt");
    send.send_response(status(503));
    assert_eq!(assert_ready!(b.poll()).unwrap().status(), 503);
    assert!(take(&mut handle).is_none(), "B was not retried");

    // A's retry succeeds: the slot is free again, and C's failure is retried.
    a_retry.send_response(status(200));
    assert_eq!(assert_ready!(a.poll()).unwrap().status(), 200);
    assert_eq!(limit.in_flight(), 0);
    let mut c = task::spawn(service.clone().oneshot(request(Method::GET, "")));
    assert_pending!(c.poll());
    let (_, send) = take(&mut handle).expect("C's first attempt");
    send.send_response(status(503));
    assert_pending!(c.poll());
    let (_, send) = take(&mut handle).expect("C's retry");
    send.send_response(status(200));
    assert_eq!(assert_ready!(c.poll()).unwrap().status(), 200);

    // A bound of 0, set live: no retry at all.
    limit.set_max(0);
    let mut d = task::spawn(service.oneshot(request(Method::GET, "")));
    assert_pending!(d.poll());
    let (_, send) = take(&mut handle).expect("D's first attempt");
    send.send_response(status(503));
    assert_eq!(assert_ready!(d.poll()).unwrap().status(), 503);
}

#[tokio::test(start_paused = true)]
async fn every_attempt_carries_the_callers_extensions_and_deadline() {
    use mesh_core::attempts::AvoidTried;
    #[derive(Clone, Debug, PartialEq)]
    struct Tag(&'static str);
    let (service, mut handle) = setup(RetryLayer::new(policy()).unwrap());
    let deadline = Deadline::after(Duration::from_secs(5));
    for tagged in [false, true] {
        let mut req = request(Method::GET, "");
        req.extensions_mut().insert(deadline);
        if tagged {
            req.extensions_mut().insert(Tag("caller"));
        }
        let mut future = task::spawn(service.clone().oneshot(req));
        assert_pending!(future.poll());
        let (first, send) = take(&mut handle).unwrap();
        assert_eq!(first.extensions().get::<Deadline>(), Some(&deadline));
        assert_eq!(first.extensions().get::<Tag>().is_some(), tagged);
        assert_eq!(first.extensions().len(), 1 + usize::from(tagged));
        send.send_response(status(503));
        assert_pending!(future.poll());
        let (retry, send) = take(&mut handle).expect("a retry");
        // The deadline is kept aside for retries and put back: the same set as before, plus
        // the marker.
        assert_eq!(retry.extensions().get::<Deadline>(), Some(&deadline));
        assert_eq!(
            retry.extensions().get::<Tag>().cloned(),
            tagged.then_some(Tag("caller"))
        );
        assert!(retry.extensions().get::<AvoidTried>().is_some());
        assert_eq!(retry.extensions().len(), 2 + usize::from(tagged));
        send.send_response(status(200));
        assert_eq!(assert_ready!(future.poll()).unwrap().status(), 200);
    }
}
