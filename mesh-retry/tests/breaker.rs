//! Circuit breaker: every state transition, both windows, the trip rules, probe reclaim, both modes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use http_body_util::BodyExt;
use mesh_core::classify::Outcome;

use http::{Request, Response};
use mesh_core::BoxError;
use mesh_core::classify::MeshClassifier;
use mesh_core::error::{CircuitOpen, Timeout};
use mesh_retry::breaker::{
    BreakerBody, BreakerConfig, BreakerHandle, BreakerMode, BreakerState, CircuitBreaker,
    CircuitBreakerLayer, SlidingWindow,
};
use mesh_test::response::with_body;
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower_test::mock::{self, Mock, Spawn};

type Req = Request<String>;
type Res = Response<String>;
type Breaker = Spawn<CircuitBreaker<Mock<Req, Res>, MeshClassifier>>;
type MockHandle = mock::Handle<Req, Res>;

const OPEN: Duration = Duration::from_secs(5);

/// No jitter, so open periods are exact.
fn base() -> BreakerConfig {
    BreakerConfig::new()
        .open_duration(OPEN, 2.0, Duration::from_secs(60))
        .jitter(0.0)
}

fn setup(config: BreakerConfig) -> (Breaker, MockHandle, BreakerHandle) {
    let (svc, handle) = mock::spawn_layer(CircuitBreakerLayer::new(config).unwrap());
    let breaker = svc.get_ref().handle().clone();
    (svc, handle, breaker)
}

fn response(status: u16) -> Res {
    with_body(status, String::from("body"))
}

/// One request answered with `status`; returns the response with its body still open.
async fn exchange(
    svc: &mut Breaker,
    backend: &mut MockHandle,
    status: u16,
) -> Result<Response<BreakerBody<String>>, BoxError> {
    assert_ready_ok!(svc.poll_ready());
    let future = svc.call(Request::new(String::new()));
    let (_, reply) = backend
        .next_request()
        .await
        .expect("request reaches the backend");
    reply.send_response(response(status));
    future.await
}

/// One request answered with `status`, body finished (dropped) at once.
async fn send(svc: &mut Breaker, backend: &mut MockHandle, status: u16) {
    drop(exchange(svc, backend, status).await.unwrap());
}

/// A call refused by the breaker in fail-fast mode, without reaching the backend.
async fn assert_refused(svc: &mut Breaker, backend: &mut MockHandle) {
    assert_ready_ok!(svc.poll_ready());
    let err = svc.call(Request::new(String::new())).await.unwrap_err();
    assert!(err.is::<CircuitOpen>(), "expected CircuitOpen, got {err}");
    assert!(
        futures_poll(backend).is_pending(),
        "a refused call must not reach the backend"
    );
}

fn futures_poll(backend: &mut MockHandle) -> Poll<()> {
    let mut next = task::spawn(backend.next_request());
    next.poll().map(|_| ())
}

#[tokio::test(start_paused = true)]
async fn count_window_trips_at_the_failure_rate_once_minimum_calls_are_in() {
    let config = base().failure_rate(SlidingWindow::Calls(4), 4, 0.5);
    let (mut svc, mut backend, breaker) = setup(config);

    // 3 calls, 2 failures: 66 % but below the minimum of 4 calls.
    send(&mut svc, &mut backend, 500).await;
    send(&mut svc, &mut backend, 200).await;
    send(&mut svc, &mut backend, 502).await;
    assert_eq!(breaker.state(), BreakerState::Closed);
    // 4 calls, 2 failures: 50 % reaches the threshold.
    send(&mut svc, &mut backend, 200).await;
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_refused(&mut svc, &mut backend).await;
}

#[tokio::test(start_paused = true)]
async fn count_window_forgets_calls_that_slid_out() {
    let config = base().failure_rate(SlidingWindow::Calls(4), 4, 0.5);
    let (mut svc, mut backend, breaker) = setup(config);
    for status in [500, 200, 200, 200, 200] {
        send(&mut svc, &mut backend, status).await;
    }
    // The window is now [200, 200, 200, 200]; one failure makes 25 %, not 50 %.
    send(&mut svc, &mut backend, 500).await;
    assert_eq!(breaker.state(), BreakerState::Closed);
    send(&mut svc, &mut backend, 500).await;
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "2 of the last 4 failed"
    );
}

#[tokio::test(start_paused = true)]
async fn minimum_calls_holds_back_a_decision() {
    let config = base().failure_rate(SlidingWindow::Calls(100), 10, 0.5);
    let (mut svc, mut backend, breaker) = setup(config);
    for _ in 0..9 {
        send(&mut svc, &mut backend, 500).await;
    }
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "9 failures < 10 calls"
    );
    send(&mut svc, &mut backend, 500).await;
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn time_window_ages_out_old_seconds() {
    let config = base().failure_rate(SlidingWindow::Seconds(10), 3, 0.5);
    let (mut svc, mut backend, breaker) = setup(config);
    send(&mut svc, &mut backend, 500).await;
    send(&mut svc, &mut backend, 500).await;
    // Ten seconds later both failures have left the window.
    advance(Duration::from_secs(10)).await;
    send(&mut svc, &mut backend, 500).await;
    send(&mut svc, &mut backend, 200).await;
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "1 of 2 calls < minimum"
    );
    // Within the window, calls of different seconds add up.
    advance(Duration::from_secs(4)).await;
    send(&mut svc, &mut backend, 200).await;
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "1 failure in 3 calls"
    );
    advance(Duration::from_secs(4)).await;
    send(&mut svc, &mut backend, 500).await;
    assert_eq!(breaker.state(), BreakerState::Open, "2 failures in 4 calls");
}

#[tokio::test(start_paused = true)]
async fn slow_call_rate_trips_on_calls_slow_until_the_body_ends() {
    let config = base()
        .failure_rate(SlidingWindow::Calls(4), 2, 1.0)
        .slow_calls(Duration::from_secs(1), 0.5);
    let (mut svc, mut backend, breaker) = setup(config);

    // Fast head, but the body takes 2 s: slow.
    let res = exchange(&mut svc, &mut backend, 200).await.unwrap();
    advance(Duration::from_secs(2)).await;
    drop(res);
    assert_eq!(breaker.state(), BreakerState::Closed, "below minimum calls");
    // A fast call: 1 slow of 2 = 50 %.
    send(&mut svc, &mut backend, 200).await;
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_trip_and_a_success_resets_the_count() {
    let (mut svc, mut backend, breaker) = setup(base().consecutive_failures(3));
    for status in [500, 500, 200, 500, 500] {
        send(&mut svc, &mut backend, status).await;
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    send(&mut svc, &mut backend, 503).await;
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn errors_from_the_inner_service_are_failures() {
    let (mut svc, mut backend, breaker) = setup(base().consecutive_failures(1));
    assert_ready_ok!(svc.poll_ready());
    let future = svc.call(Request::new(String::new()));
    let (_, reply) = backend.next_request().await.unwrap();
    reply.send_error(Timeout::new());
    let err = future.await.unwrap_err();
    assert!(err.is::<Timeout>(), "the inner error is returned unchanged");
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn overloaded_responses_count_as_neither_by_default() {
    let (mut svc, mut backend, breaker) = setup(base().consecutive_failures(2));
    for _ in 0..5 {
        send(&mut svc, &mut backend, 429).await;
    }
    assert_eq!(breaker.state(), BreakerState::Closed);

    let counting = base().consecutive_failures(2).count_overloaded(true);
    let (mut svc, mut backend, breaker) = setup(counting);
    send(&mut svc, &mut backend, 429).await;
    send(&mut svc, &mut backend, 429).await;
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn full_cycle_open_half_open_closed_and_reopen_with_growth() {
    let (mut svc, mut backend, breaker) = setup(base().consecutive_failures(1));
    let mut events = breaker.subscribe();

    send(&mut svc, &mut backend, 500).await;
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(*events.borrow_and_update(), BreakerState::Open);

    // Open for exactly 5 s.
    advance(OPEN - Duration::from_millis(1)).await;
    assert_eq!(breaker.state(), BreakerState::Open);
    advance(Duration::from_millis(1)).await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert_eq!(*events.borrow_and_update(), BreakerState::HalfOpen);

    // The probe fails: open again, now for 10 s.
    send(&mut svc, &mut backend, 500).await;
    assert_eq!(breaker.state(), BreakerState::Open);
    advance(2 * OPEN - Duration::from_millis(1)).await;
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "second open period is doubled"
    );
    advance(Duration::from_millis(1)).await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);

    // The probe succeeds: closed.
    send(&mut svc, &mut backend, 200).await;
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(*events.borrow_and_update(), BreakerState::Closed);

    // Growth was reset by the close: the next open period is 5 s again.
    send(&mut svc, &mut backend, 500).await;
    advance(OPEN).await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn open_duration_is_capped() {
    let config = base()
        .consecutive_failures(1)
        .open_duration(OPEN, 10.0, Duration::from_secs(20));
    let (mut svc, mut backend, breaker) = setup(config);
    send(&mut svc, &mut backend, 500).await;
    advance(OPEN).await;
    send(&mut svc, &mut backend, 500).await; // probe fails: 50 s, capped to 20 s
    advance(Duration::from_secs(20)).await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn jitter_only_shortens_the_open_period() {
    for seed in 0..20 {
        let config = base().consecutive_failures(1).jitter(0.2).seed(seed);
        let (mut svc, mut backend, breaker) = setup(config);
        send(&mut svc, &mut backend, 500).await;
        advance(Duration::from_millis(3_999)).await;
        assert_eq!(
            breaker.state(),
            BreakerState::Open,
            "seed {seed}: at least 80 %"
        );
        advance(Duration::from_millis(1_001)).await;
        assert_eq!(
            breaker.state(),
            BreakerState::HalfOpen,
            "seed {seed}: at most 100 %"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_only_the_configured_probes() {
    let config = base()
        .failure_rate(SlidingWindow::Calls(10), 1, 0.5)
        .half_open_probes(2);
    let (mut svc, mut backend, breaker) = setup(config);
    send(&mut svc, &mut backend, 500).await;
    advance(OPEN).await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);

    assert_ready_ok!(svc.poll_ready());
    let first = svc.call(Request::new(String::new()));
    let (_, first_reply) = backend.next_request().await.unwrap();
    assert_ready_ok!(svc.poll_ready());
    let second = svc.call(Request::new(String::new()));
    let (_, second_reply) = backend.next_request().await.unwrap();
    assert_refused(&mut svc, &mut backend).await;

    // ⌈0.5 × 2⌉ = 1 bad probe reopens; 2 good probes close.
    first_reply.send_response(response(200));
    drop(first.await.unwrap());
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen,
        "one good probe of two"
    );
    second_reply.send_response(response(200));
    drop(second.await.unwrap());
    assert_eq!(breaker.state(), BreakerState::Closed);
}

/// The resilience4j #903 bug class: a probe that never reports must not leave the breaker stuck.
#[tokio::test(start_paused = true)]
async fn dropped_probe_future_is_reclaimed_and_the_next_probe_admitted() {
    let (mut svc, mut backend, breaker) = setup(base().consecutive_failures(1));
    send(&mut svc, &mut backend, 500).await;
    advance(OPEN).await;

    assert_ready_ok!(svc.poll_ready());
    let probe = svc.call(Request::new(String::new()));
    let _ = backend.next_request().await.unwrap();
    assert_refused(&mut svc, &mut backend).await;
    drop(probe); // cancelled before the response
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen,
        "a cancellation counts as nothing"
    );

    // The slot is free again: the next probe goes through and closes the breaker.
    send(&mut svc, &mut backend, 200).await;
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn probe_reserved_but_never_called_is_reclaimed() {
    let (mut svc, mut backend, breaker) = setup(base().consecutive_failures(1));
    send(&mut svc, &mut backend, 500).await;
    advance(OPEN).await;

    let mut clone = Spawn::new(svc.get_ref().clone());
    assert_ready_ok!(clone.poll_ready()); // holds the only probe slot
    assert_refused(&mut svc, &mut backend).await;
    drop(clone);
    send(&mut svc, &mut backend, 200).await;
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn grpc_probe_whose_body_is_dropped_before_trailers_is_reclaimed() {
    let (mut svc, mut backend, breaker) = setup(base().consecutive_failures(1));
    send(&mut svc, &mut backend, 500).await;
    advance(OPEN).await;

    assert_ready_ok!(svc.poll_ready());
    let request = Request::post("/")
        .header("content-type", "application/grpc")
        .body(String::new())
        .unwrap();
    let probe = svc.call(request);
    let (_, reply) = backend.next_request().await.unwrap();
    reply.send_response(Response::new(String::from("grpc frames, no trailers yet")));
    let res = probe.await.unwrap();
    assert_refused(&mut svc, &mut backend).await;
    drop(res); // the status would have come in the trailers: Cancelled
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    send(&mut svc, &mut backend, 200).await;
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn late_outcome_of_an_older_state_is_ignored() {
    let (mut svc, mut backend, breaker) = setup(base().consecutive_failures(1));
    // A slow call admitted while closed…
    let slow = exchange(&mut svc, &mut backend, 200).await.unwrap();
    send(&mut svc, &mut backend, 500).await;
    advance(OPEN).await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    // …ends during half-open: it is not a probe, and must not close the breaker.
    drop(slow);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_breaker() {
    let (mut svc, mut backend, breaker) = setup(base().consecutive_failures(2));
    let mut clone = Spawn::new(svc.get_ref().clone());
    send(&mut svc, &mut backend, 500).await;
    send(&mut clone, &mut backend, 500).await;
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_refused(&mut clone, &mut backend).await;
    assert_refused(&mut svc, &mut backend).await;
}

#[tokio::test(start_paused = true)]
async fn gate_mode_is_pending_while_open_and_wakes_when_the_period_ends() {
    let config = base().consecutive_failures(1).mode(BreakerMode::Gate);
    let (mut svc, mut backend, breaker) = setup(config);
    send(&mut svc, &mut backend, 500).await;

    assert_pending!(svc.poll_ready());
    advance(OPEN - Duration::from_millis(1)).await;
    assert!(!svc.is_woken());
    assert_pending!(svc.poll_ready());
    advance(Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    assert!(svc.is_woken(), "the open timer wakes the task");
    assert_ready_ok!(svc.poll_ready());
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn gate_mode_wakes_a_waiter_when_a_probe_slot_frees() {
    let config = base().consecutive_failures(1).mode(BreakerMode::Gate);
    let (mut svc, mut backend, _breaker) = setup(config);
    send(&mut svc, &mut backend, 500).await;
    advance(OPEN).await;

    assert_ready_ok!(svc.poll_ready());
    let probe = svc.call(Request::new(String::new()));
    let mut other = Spawn::new(svc.get_ref().clone());
    assert_pending!(other.poll_ready());
    drop(probe);
    assert!(
        other.is_woken(),
        "reclaiming the probe wakes the waiting gate"
    );
    assert_ready_ok!(other.poll_ready());
}

#[tokio::test(start_paused = true)]
async fn manual_permits_guard_non_tower_calls() {
    let breaker = BreakerHandle::new(&base().consecutive_failures(1)).unwrap();
    let permit = breaker.try_acquire().unwrap();
    permit.record_error(&Timeout::new());
    assert!(breaker.try_acquire().is_err());
    advance(OPEN).await;
    let probe = breaker.try_acquire().expect("half-open admits a probe");
    assert!(breaker.try_acquire().is_err(), "one probe at a time");
    probe.record(&Outcome::Success);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

/// A body with one data frame, then trailers.
struct TrailerBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl http_body::Body for TrailerBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

#[tokio::test(start_paused = true)]
async fn grpc_status_in_trailers_counts_at_body_end() {
    let layer = CircuitBreakerLayer::new(base().consecutive_failures(1)).unwrap();
    let (mut svc, mut backend) = mock::spawn_layer::<Req, Response<TrailerBody>, _>(layer);
    let breaker = svc.get_ref().handle().clone();

    assert_ready_ok!(svc.poll_ready());
    let request = Request::post("/")
        .header("content-type", "application/grpc")
        .body(String::new())
        .unwrap();
    let future = svc.call(request);
    let (_, reply) = backend.next_request().await.unwrap();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "14".parse().unwrap());
    reply.send_response(Response::new(TrailerBody {
        data: Some(Bytes::from_static(b"frame")),
        trailers: Some(trailers),
    }));
    let body = future.await.unwrap().into_body();
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "a 200 head decides nothing for gRPC"
    );
    let collected = body.collect().await.unwrap();
    assert!(collected.trailers().is_some());
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "UNAVAILABLE in the trailers is a failure"
    );
}

#[test]
fn invalid_config_names_the_key() {
    let err = CircuitBreakerLayer::new(BreakerConfig::new().half_open_probes(0)).unwrap_err();
    assert_eq!(err.key(), "half_open_probes");
    let err = CircuitBreakerLayer::new(BreakerConfig::new().failure_rate(
        SlidingWindow::Calls(10),
        5,
        1.5,
    ))
    .unwrap_err();
    assert_eq!(err.key(), "trip.failure_rate");
    assert!(err.to_string().contains("trip.failure_rate"));
    let err = CircuitBreakerLayer::new(BreakerConfig::new().jitter(2.0)).unwrap_err();
    assert_eq!(err.key(), "jitter");
}
