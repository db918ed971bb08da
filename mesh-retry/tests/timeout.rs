//! Request timeouts and deadlines: the `grpc-timeout` format, reading it (capped), writing the
//! time left, the `Deadline` extension and the typed `Timeout` error.

use std::time::Duration;

use http::{Request, Response};
use mesh_core::error::Timeout;
use mesh_retry::timeout::{Deadline, RequestTimeoutLayer, TimeoutConfig, grpc_timeout};
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, ServiceExt};
use tower_test::mock;

#[test]
fn grpc_timeout_parse_table() {
    let ok: &[(&str, Duration)] = &[
        ("1H", Duration::from_secs(3600)),
        ("2M", Duration::from_secs(120)),
        ("3S", Duration::from_secs(3)),
        ("250m", Duration::from_millis(250)),
        ("7u", Duration::from_micros(7)),
        ("9n", Duration::from_nanos(9)),
        ("0S", Duration::ZERO),
        ("00000010m", Duration::from_millis(10)),
        ("99999999H", Duration::from_secs(99_999_999 * 3600)),
    ];
    for (text, expected) in ok {
        assert_eq!(
            grpc_timeout::parse(text.as_bytes()),
            Some(*expected),
            "{text}"
        );
    }
    let malformed: &[&[u8]] = &[
        b"",
        b"S",
        b"10",
        b"123456789S", // nine digits
        b"-1S",
        b"+1S",
        b"1.5S",
        b" 1S",
        b"1S ",
        b"1s", // units are case-sensitive: `s` is not one
        b"1h",
        b"1X",
        b"1\xffS",
        b"\xff",
    ];
    for text in malformed {
        assert_eq!(
            grpc_timeout::parse(text),
            None,
            "{:?}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn grpc_timeout_encoding_is_precise_and_rounds_down() {
    let table: &[(Duration, &str)] = &[
        (Duration::ZERO, "0n"),
        (Duration::from_nanos(99_999_999), "99999999n"),
        (Duration::from_millis(100), "100000u"),
        (Duration::from_millis(1500), "1500000u"),
        (Duration::from_secs(30), "30000000u"),
        (Duration::from_secs(100_000), "100000S"),
        (Duration::from_secs(100_000_000), "1666666M"),
        (Duration::from_secs(u64::MAX), "99999999H"),
    ];
    for (duration, text) in table {
        let value = grpc_timeout::encode(*duration);
        assert_eq!(value, *text);
        let back = grpc_timeout::parse(value.as_bytes()).unwrap();
        assert!(back <= *duration);
    }
}

type Handle = mock::Handle<Request<()>, Response<()>>;
type Service = mesh_retry::timeout::RequestTimeout<mock::Mock<Request<()>, Response<()>>>;

fn service(config: TimeoutConfig) -> (Service, Handle) {
    let (mock, mut handle) = mock::pair();
    handle.allow(10);
    (RequestTimeoutLayer::new(config).layer(mock), handle)
}

fn grpc_request(timeout: Option<&str>) -> Request<()> {
    let mut builder =
        Request::post("http://orders/orders.Orders/Get").header("content-type", "application/grpc");
    if let Some(timeout) = timeout {
        builder = builder.header("grpc-timeout", timeout);
    }
    builder.body(()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn request_timeout_fails_with_timeout() {
    let (service, mut handle) =
        service(TimeoutConfig::default().timeout(Some(Duration::from_millis(500))));
    let mut future = task::spawn(service.oneshot(Request::new(())));
    assert_pending!(future.poll());
    let (request, _send) = handle.next_request().await.unwrap();
    let deadline = request.extensions().get::<Deadline>().copied().unwrap();
    assert_eq!(deadline.remaining(), Duration::from_millis(500));
    assert!(
        request.headers().get("grpc-timeout").is_none(),
        "not a gRPC request"
    );
    tokio::time::advance(Duration::from_millis(499)).await;
    assert_pending!(future.poll());
    tokio::time::advance(Duration::from_millis(1)).await;
    let error = assert_ready!(future.poll()).unwrap_err();
    assert!(error.is::<Timeout>());
}

#[tokio::test(start_paused = true)]
async fn response_before_the_deadline_wins() {
    let (service, mut handle) = service(TimeoutConfig::default());
    let mut future = task::spawn(service.oneshot(Request::new(())));
    assert_pending!(future.poll());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(()));
    assert_ready!(future.poll()).unwrap();
}

#[tokio::test(start_paused = true)]
async fn incoming_grpc_timeout_shortens_the_deadline_and_is_rewritten() {
    let (service, mut handle) = service(TimeoutConfig::default());
    let mut future = task::spawn(service.oneshot(grpc_request(Some("100m"))));
    assert_pending!(future.poll());
    let (request, _send) = handle.next_request().await.unwrap();
    assert_eq!(request.headers()["grpc-timeout"], "100000u");
    tokio::time::advance(Duration::from_millis(100)).await;
    assert!(assert_ready!(future.poll()).unwrap_err().is::<Timeout>());
}

#[tokio::test(start_paused = true)]
async fn incoming_grpc_timeout_is_capped_by_the_configured_timeout() {
    let (service, mut handle) =
        service(TimeoutConfig::default().timeout(Some(Duration::from_secs(2))));
    let mut future = task::spawn(service.oneshot(grpc_request(Some("1H"))));
    assert_pending!(future.poll());
    let (request, _send) = handle.next_request().await.unwrap();
    assert_eq!(request.headers()["grpc-timeout"], "2000000u");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(assert_ready!(future.poll()).unwrap_err().is::<Timeout>());
}

#[tokio::test(start_paused = true)]
async fn malformed_grpc_timeout_is_ignored() {
    let (service, mut handle) = service(
        TimeoutConfig::default()
            .timeout(None)
            .write_grpc_timeout(true),
    );
    let mut future = task::spawn(service.oneshot(grpc_request(Some("soon"))));
    assert_pending!(future.poll());
    let (request, send) = handle.next_request().await.unwrap();
    assert!(
        request.headers().get("grpc-timeout").is_none(),
        "dropped, not forwarded"
    );
    assert!(request.extensions().get::<Deadline>().is_none());
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_pending!(future.poll());
    send.send_response(Response::new(()));
    assert_ready!(future.poll()).unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_earlier_outer_deadline_is_kept() {
    let (service, mut handle) = service(TimeoutConfig::default());
    let mut request = grpc_request(None);
    let outer = Deadline::after(Duration::from_millis(50));
    request.extensions_mut().insert(outer);
    let mut future = task::spawn(service.oneshot(request));
    assert_pending!(future.poll());
    let (request, _send) = handle.next_request().await.unwrap();
    assert_eq!(request.extensions().get::<Deadline>(), Some(&outer));
    assert_eq!(request.headers()["grpc-timeout"], "50000000n");
    tokio::time::advance(Duration::from_millis(50)).await;
    assert!(assert_ready!(future.poll()).unwrap_err().is::<Timeout>());
}

/// With `hand_deadline_directly` the service below is handed the same deadline the extension would
/// carry (the earliest of the layer's, the caller's `grpc-timeout` and an outer `Deadline`), the
/// extensions are left as they came, `grpc-timeout` is still written, and the deadline is still
/// enforced.
#[tokio::test(start_paused = true)]
async fn a_deadline_handed_directly_is_the_one_the_extension_would_carry() {
    use std::convert::Infallible;
    use std::future::{Pending, pending};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use mesh_retry::timeout::TakesDeadline;

    /// Records the deadline, the number of extensions and the `grpc-timeout` it is handed, and
    /// never answers: the deadline decides.
    #[derive(Clone, Default)]
    struct Recorder {
        seen: Arc<Mutex<Vec<Seen>>>,
    }
    type Seen = (Option<Deadline>, usize, Option<String>);
    impl tower::Service<Request<()>> for Recorder {
        type Response = ();
        type Error = Infallible;
        type Future = Pending<Result<(), Infallible>>;
        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _req: Request<()>) -> Self::Future {
            unreachable!("the timeout layer hands the deadline over")
        }
    }
    impl TakesDeadline<Request<()>> for Recorder {
        fn call_with_deadline(
            &mut self,
            req: Request<()>,
            deadline: Option<Deadline>,
        ) -> Self::Future {
            let timeout = req
                .headers()
                .get("grpc-timeout")
                .map(|v| v.to_str().unwrap().to_owned());
            self.seen
                .lock()
                .unwrap()
                .push((deadline, req.extensions().len(), timeout));
            pending()
        }
    }
    let recorder = Recorder::default();
    let layer =
        RequestTimeoutLayer::new(TimeoutConfig::default().timeout(Some(Duration::from_secs(2))))
            .hand_deadline_directly();
    let start = tokio::time::Instant::now();

    // The layer's own 2 s, capping the caller's 5 s; nothing added to the extensions.
    let mut future = task::spawn(
        layer
            .layer(recorder.clone())
            .oneshot(grpc_request(Some("5S"))),
    );
    assert_pending!(future.poll());
    // An outer deadline earlier than both: handed over, and left in the extensions.
    let mut outer_request = grpc_request(Some("1S"));
    let outer = Deadline::at(start + Duration::from_millis(300));
    outer_request.extensions_mut().insert(outer);
    let mut outer_future = task::spawn(layer.layer(recorder.clone()).oneshot(outer_request));
    assert_pending!(outer_future.poll());
    {
        let seen = recorder.seen.lock().unwrap();
        assert_eq!(
            seen[0],
            (
                Some(Deadline::at(start + Duration::from_secs(2))),
                0,
                Some("2000000u".to_owned())
            )
        );
        assert_eq!(seen[1], (Some(outer), 1, Some("300000u".to_owned())));
    }
    tokio::time::advance(Duration::from_millis(300)).await;
    assert!(
        assert_ready!(outer_future.poll())
            .unwrap_err()
            .is::<Timeout>()
    );
    assert_pending!(future.poll());
    tokio::time::advance(Duration::from_millis(1700)).await;
    assert!(assert_ready!(future.poll()).unwrap_err().is::<Timeout>());
}

/// Every gRPC call is a `POST`: on a request of another method `grpc-timeout` is neither read
/// nor rewritten, whatever the content type.
#[tokio::test(start_paused = true)]
async fn grpc_timeout_is_left_alone_on_a_get() {
    let (service, mut handle) =
        service(TimeoutConfig::default().timeout(Some(Duration::from_secs(2))));
    let mut request = grpc_request(Some("100m"));
    *request.method_mut() = http::Method::GET;
    let mut future = task::spawn(service.oneshot(request));
    assert_pending!(future.poll());
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request.headers()["grpc-timeout"], "100m");
    let deadline = request.extensions().get::<Deadline>().copied().unwrap();
    assert_eq!(deadline.remaining(), Duration::from_secs(2));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_pending!(future.poll());
    send.send_response(Response::new(()));
    assert_ready!(future.poll()).unwrap();
}
