//! Hedged requests, at the poll level with a paused clock.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use mesh_retry::body::ReplayBody;
use mesh_retry::budget::{WindowBudget, WindowBudgetConfig};
use mesh_retry::hedge::{Hedge, HedgeConfig, HedgeDelay, HedgeLayer, LatencyHistogram};
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, ServiceExt};
use tower_test::mock;

type Body = ReplayBody<Full<Bytes>>;
type Handle = mock::Handle<Request<Body>, Response<&'static str>>;
type Service = Hedge<mock::Mock<Request<Body>, Response<&'static str>>>;
type Responder = mock::SendResponse<Response<&'static str>>;

fn fixed(ms: u64) -> HedgeLayer {
    HedgeLayer::new(HedgeConfig::default().delay(HedgeDelay::Fixed(Duration::from_millis(ms))))
        .unwrap()
}

fn setup(layer: HedgeLayer) -> (Service, Handle) {
    let (mock, mut handle) = mock::pair();
    handle.allow(100);
    (layer.layer(mock), handle)
}

fn request(method: Method) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("http://orders/items")
        .body(Full::new(Bytes::from_static(b"query")))
        .unwrap()
}

fn take(handle: &mut Handle) -> Option<(Request<Body>, Responder)> {
    match handle.poll_request() {
        std::task::Poll::Ready(request) => request,
        std::task::Poll::Pending => None,
    }
}

fn answer(status: u16, body: &'static str) -> Response<&'static str> {
    Response::builder().status(status).body(body).unwrap()
}

#[tokio::test(start_paused = true)]
async fn slow_first_attempt_is_hedged_and_the_hedge_wins() {
    let (service, mut handle) = setup(fixed(50));
    let mut future = task::spawn(service.oneshot(request(Method::GET)));
    assert_pending!(future.poll());
    let (_, first) = take(&mut handle).expect("first attempt");
    tokio::time::advance(Duration::from_millis(49)).await;
    assert_pending!(future.poll());
    assert!(take(&mut handle).is_none(), "hedged too early");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_pending!(future.poll());
    let (hedge, second) = take(&mut handle).expect("the hedge");
    assert_eq!(
        hedge.into_body().collect().await.unwrap().to_bytes(),
        "query"
    );
    second.send_response(answer(200, "hedge"));
    let response = assert_ready!(future.poll()).unwrap();
    assert_eq!(*response.body(), "hedge");
    drop(first);
}

#[tokio::test(start_paused = true)]
async fn fast_first_attempt_is_not_hedged() {
    let (service, mut handle) = setup(fixed(50));
    let mut future = task::spawn(service.oneshot(request(Method::GET)));
    assert_pending!(future.poll());
    take(&mut handle)
        .unwrap()
        .1
        .send_response(answer(200, "first"));
    assert_eq!(*assert_ready!(future.poll()).unwrap().body(), "first");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(take(&mut handle).is_none());
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_requests_are_not_hedged() {
    let (service, mut handle) = setup(fixed(50));
    let mut future = task::spawn(service.oneshot(request(Method::POST)));
    assert_pending!(future.poll());
    let (_, first) = take(&mut handle).unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_pending!(future.poll());
    assert!(take(&mut handle).is_none());
    first.send_response(answer(200, "first"));
    assert_eq!(*assert_ready!(future.poll()).unwrap().body(), "first");
}

#[tokio::test(start_paused = true)]
async fn hedges_draw_from_the_budget() {
    let empty = WindowBudget::new(WindowBudgetConfig::default().ratio(0.0).min_per_sec(0)).unwrap();
    let (service, mut handle) = setup(fixed(50).budget(empty.clone()));
    let mut future = task::spawn(service.oneshot(request(Method::GET)));
    assert_pending!(future.poll());
    let (_, first) = take(&mut handle).unwrap();
    tokio::time::advance(Duration::from_millis(50)).await;
    assert_pending!(future.poll());
    assert!(take(&mut handle).is_none(), "no budget, no hedge");
    first.send_response(answer(200, "first"));
    assert_ready!(future.poll()).unwrap();
    assert_eq!(empty.requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failure_waits_for_the_other_attempt() {
    let (service, mut handle) = setup(fixed(50));
    let mut future = task::spawn(service.oneshot(request(Method::GET)));
    assert_pending!(future.poll());
    let (_, first) = take(&mut handle).unwrap();
    tokio::time::advance(Duration::from_millis(50)).await;
    assert_pending!(future.poll());
    let (_, second) = take(&mut handle).unwrap();
    first.send_response(answer(503, "first"));
    assert_pending!(future.poll());
    second.send_response(answer(200, "hedge"));
    assert_eq!(*assert_ready!(future.poll()).unwrap().body(), "hedge");
}

#[tokio::test(start_paused = true)]
async fn when_both_fail_the_last_failure_is_returned() {
    let (service, mut handle) = setup(fixed(50));
    let mut future = task::spawn(service.oneshot(request(Method::GET)));
    assert_pending!(future.poll());
    let (_, first) = take(&mut handle).unwrap();
    tokio::time::advance(Duration::from_millis(50)).await;
    assert_pending!(future.poll());
    let (_, second) = take(&mut handle).unwrap();
    second.send_response(answer(502, "hedge"));
    assert_pending!(future.poll());
    first.send_response(answer(503, "first"));
    assert_eq!(*assert_ready!(future.poll()).unwrap().body(), "first");
}

#[tokio::test(start_paused = true)]
async fn percentile_delay_waits_for_samples_then_follows_latency() {
    let histogram = LatencyHistogram::new(Duration::from_secs(10));
    let layer = HedgeLayer::new(HedgeConfig::default().delay(HedgeDelay::Percentile {
        percentile: 0.9,
        min_samples: 10,
    }))
    .unwrap()
    .histogram(histogram.clone());
    let (service, mut handle) = setup(layer);
    // Ten requests answered after 10 ms: no hedging while the samples are being gathered.
    for _ in 0..10 {
        let mut future = task::spawn(service.clone().oneshot(request(Method::GET)));
        assert_pending!(future.poll());
        let (_, send) = take(&mut handle).unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_pending!(future.poll());
        assert!(take(&mut handle).is_none());
        send.send_response(answer(200, "ok"));
        assert_ready!(future.poll()).unwrap();
    }
    assert_eq!(histogram.count(), 10);
    let p90 = histogram.percentile(0.9, 10).unwrap();
    assert!(
        p90 >= Duration::from_millis(10) && p90 < Duration::from_millis(12),
        "{p90:?}"
    );
    // Now a slow request is hedged at the p90 bound (tokio timers have millisecond resolution).
    let mut future = task::spawn(service.clone().oneshot(request(Method::GET)));
    assert_pending!(future.poll());
    let (_, _first) = take(&mut handle).unwrap();
    tokio::time::advance(Duration::from_millis(10)).await;
    assert_pending!(future.poll());
    assert!(take(&mut handle).is_none());
    tokio::time::advance(Duration::from_millis(2)).await;
    assert_pending!(future.poll());
    assert!(take(&mut handle).is_some(), "hedged at the percentile");
}

#[tokio::test(start_paused = true)]
async fn histogram_rotates_and_forgets() {
    let histogram = LatencyHistogram::new(Duration::from_secs(10));
    for ms in 1..=100 {
        histogram.record(Duration::from_millis(ms));
    }
    let p50 = histogram.percentile(0.5, 1).unwrap();
    assert!(
        p50 >= Duration::from_millis(50) && p50 <= Duration::from_millis(60),
        "{p50:?}"
    );
    let p100 = histogram.percentile(1.0, 1).unwrap();
    assert!(p100 >= Duration::from_millis(100) && p100 <= Duration::from_millis(120));
    assert_eq!(histogram.percentile(0.5, 101), None, "too few samples");
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        histogram.count(),
        100,
        "the previous generation still counts"
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(histogram.count(), 0);
    assert_eq!(histogram.percentile(0.5, 0), None);
}

#[test]
fn a_percentile_outside_zero_to_one_or_a_zero_window_is_refused() {
    for percentile in [-0.1, 1.5, f64::NAN] {
        let config = HedgeConfig::default().delay(HedgeDelay::Percentile {
            percentile,
            min_samples: 10,
        });
        let err = HedgeLayer::new(config).unwrap_err();
        assert_eq!(err.key(), "delay.percentile");
    }
    let err = HedgeLayer::new(HedgeConfig::default().window(Duration::ZERO)).unwrap_err();
    assert_eq!(err.key(), "window");
    assert!(HedgeLayer::new(HedgeConfig::default()).is_ok());
}
