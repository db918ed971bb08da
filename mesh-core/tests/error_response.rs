//! The error-to-response table: each failure → HTTP status, gRPC status, `mesh-error`, delay headers.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mesh_core::Body;
use mesh_core::error::{
    BoxError, BudgetExhausted, CircuitOpen, ConnectError, ErrorResponseLayer, FailureDetail,
    MESH_ERROR_DETAIL_HEADER, MESH_ERROR_HEADER, NoEndpoints, Overloaded, RateLimited, Timeout,
    Unauthorized, UpstreamError, classify_failure,
};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A secret that must never leave the process in a response.
const SECRET: &str = "10.1.2.3:8443 cert CN=internal-db";

fn table() -> Vec<(
    BoxError,
    StatusCode,
    u16,
    &'static str,
    Option<&'static str>,
)> {
    let io = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, SECRET);
    vec![
        (
            Box::new(CircuitOpen::new()),
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            "circuit_open",
            None,
        ),
        (
            Box::new(NoEndpoints::new()),
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            "no_endpoints",
            None,
        ),
        (
            Box::new(BudgetExhausted::new()),
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            "budget_exhausted",
            None,
        ),
        (
            Box::new(Overloaded::new()),
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            "overloaded",
            None,
        ),
        (
            Box::new(Overloaded::with_retry_after(Duration::from_millis(1500))),
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            "overloaded",
            Some("2"),
        ),
        (
            Box::new(Timeout::new()),
            StatusCode::GATEWAY_TIMEOUT,
            4,
            "timeout",
            None,
        ),
        (
            Box::new(Unauthorized::with_source(SECRET)),
            StatusCode::FORBIDDEN,
            7,
            "unauthorized",
            None,
        ),
        (
            Box::new(RateLimited::new()),
            StatusCode::TOO_MANY_REQUESTS,
            8,
            "rate_limited",
            None,
        ),
        (
            Box::new(RateLimited::with_retry_after(Duration::from_secs(3))),
            StatusCode::TOO_MANY_REQUESTS,
            8,
            "rate_limited",
            Some("3"),
        ),
        (
            Box::new(ConnectError::new(io())),
            StatusCode::BAD_GATEWAY,
            14,
            "connect",
            None,
        ),
        // The outer type decides: a connect timeout is a gateway failure, not a request deadline.
        (
            Box::new(ConnectError::new(Timeout::new())),
            StatusCode::BAD_GATEWAY,
            14,
            "connect",
            None,
        ),
        (
            Box::new(UpstreamError::new(io())),
            StatusCode::BAD_GATEWAY,
            14,
            "upstream",
            None,
        ),
        (
            Box::new(UpstreamError::unsent(io())),
            StatusCode::BAD_GATEWAY,
            14,
            "upstream",
            None,
        ),
        (
            // An error mesh-core does not know: a 502 named "transport", its text kept inside.
            BoxError::from(SECRET),
            StatusCode::BAD_GATEWAY,
            14,
            "transport",
            None,
        ),
        (
            // A refused connection reported as a bare I/O error is still a connect failure.
            io().into(),
            StatusCode::BAD_GATEWAY,
            14,
            "connect",
            None,
        ),
        // A known failure wrapped by an unknown error is still found in the chain.
        (
            Box::new(Wrapped(Box::new(Timeout::new()))),
            StatusCode::GATEWAY_TIMEOUT,
            4,
            "timeout",
            None,
        ),
    ]
}

#[derive(Debug)]
struct Wrapped(BoxError);

impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wrapped {SECRET}")
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

async fn answer(err: BoxError, content_type: Option<&str>) -> Response<Body> {
    let err = std::sync::Mutex::new(Some(err));
    let failing = service_fn(move |_req: Request<Body>| {
        let err = err.lock().unwrap().take().expect("called once");
        async move { Err::<Response<Body>, BoxError>(err) }
    });
    let mut req = Request::new(Body::empty());
    if let Some(ct) = content_type {
        // gRPC calls are POSTs.
        *req.method_mut() = http::Method::POST;
        req.headers_mut()
            .insert("content-type", ct.parse().unwrap());
    }
    ErrorResponseLayer::new()
        .layer(failing)
        .oneshot(req)
        .await
        .unwrap()
}

async fn body_text(res: Response<Body>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn http_requests_get_status_and_cause() {
    for (err, status, _grpc, cause, retry_after) in table() {
        assert_eq!(classify_failure(&*err).cause(), cause);
        let res = answer(err, Some("application/json")).await;
        assert_eq!(res.status(), status, "{cause}");
        assert_eq!(res.headers()[&MESH_ERROR_HEADER], cause);
        assert_eq!(
            res.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            retry_after,
            "{cause}"
        );
        assert!(res.headers().get("grpc-status").is_none());
        let headers = format!("{:?}", res.headers());
        let detail = res
            .headers()
            .get(&MESH_ERROR_DETAIL_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        let text = body_text(res).await;
        match detail {
            Some(detail) => assert_eq!(text, format!("{cause}\n{detail}\n")),
            None => assert_eq!(text, format!("{cause}\n")),
        }
        assert!(!text.contains("10.1.2.3") && !headers.contains("10.1.2.3"));
    }
}

#[tokio::test]
async fn grpc_requests_get_trailers_only_status() {
    for ct in [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc-web",
    ] {
        for (err, _status, grpc, cause, retry_after) in table() {
            let res = answer(err, Some(ct)).await;
            assert_eq!(res.status(), StatusCode::OK, "{cause}");
            let h = res.headers();
            assert_eq!(h["content-type"], "application/grpc");
            assert_eq!(h["grpc-status"], grpc.to_string().as_str(), "{cause}");
            assert_eq!(h["grpc-message"], cause);
            assert_eq!(h[&MESH_ERROR_HEADER], cause);
            let pushback = h
                .get("grpc-retry-pushback-ms")
                .map(|v| v.to_str().unwrap().to_owned());
            let expected = retry_after.map(|s| {
                // The table's delays: 1500 ms (Overloaded) and 3 s (RateLimited).
                if s == "2" {
                    "1500".to_owned()
                } else {
                    "3000".to_owned()
                }
            });
            assert_eq!(pushback, expected, "{cause}");
            assert!(body_text(res).await.is_empty());
        }
    }
    // A GET is never a gRPC call, whatever its content type: a plain answer.
    let failing = service_fn(|_req: Request<Body>| async {
        Err::<Response<Body>, BoxError>(Box::new(ConnectError::new("refused")))
    });
    let req = Request::get("http://orders/")
        .header("content-type", "application/grpc")
        .body(Body::empty())
        .unwrap();
    let res = ErrorResponseLayer::new()
        .layer(failing)
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert!(res.headers().get("grpc-status").is_none());
}

/// The short reason each failure of the table gives, in `mesh-error-detail` and on the body's
/// second line: only errors of the allow-list have one, and none carries the error's text.
#[tokio::test]
async fn known_reasons_are_detailed_and_nothing_else_is() {
    let expected = [
        ("circuit_open", None),
        ("no_endpoints", None),
        ("budget_exhausted", None),
        ("overloaded", None),
        ("overloaded", None),
        ("timeout", Some("timed out")),
        ("unauthorized", None),
        ("rate_limited", None),
        ("rate_limited", None),
        ("connect", Some("connection refused")),
        ("connect", Some("timed out")),
        ("upstream", Some("connection refused")),
        ("upstream", Some("connection refused")),
        ("transport", None),
        ("connect", Some("connection refused")),
        ("timeout", Some("timed out")),
    ];
    let table = table();
    assert_eq!(table.len(), expected.len());
    for ((err, _, _, cause, _), (expected_cause, detail)) in table.into_iter().zip(expected) {
        assert_eq!(cause, expected_cause);
        let res = answer(err, None).await;
        let header = res
            .headers()
            .get(&MESH_ERROR_DETAIL_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header.as_deref(), detail, "{cause}");
        let text = body_text(res).await;
        assert_eq!(text.lines().nth(1), detail, "{cause}");
    }
}

/// An error type mesh-core does not know, described by the crate that owns it.
#[derive(Debug)]
struct CertRefused;

impl std::fmt::Display for CertRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "certificate of {SECRET} refused")
    }
}

impl std::error::Error for CertRefused {}

fn describe_cert(err: &(dyn std::error::Error + 'static)) -> Option<FailureDetail> {
    err.is::<CertRefused>()
        .then(|| FailureDetail::new("tls: certificate refused").with_kind("CertRefused"))
}

#[tokio::test]
async fn a_describer_explains_errors_mesh_core_does_not_know() {
    let edge = |describe: bool| {
        let layer = ErrorResponseLayer::new();
        let layer = if describe {
            layer.describe_with(describe_cert)
        } else {
            layer
        };
        layer.layer(service_fn(|_req: Request<Body>| async {
            let err: BoxError = Box::new(ConnectError::new(std::io::Error::other(CertRefused)));
            Err::<Response<Body>, _>(err)
        }))
    };
    let request = || {
        Request::post("http://orders/")
            .header("content-type", "application/grpc")
            .body(Body::empty())
            .unwrap()
    };
    let res = edge(true).oneshot(request()).await.unwrap();
    assert_eq!(res.headers()[&MESH_ERROR_HEADER], "connect");
    assert_eq!(
        res.headers()[&MESH_ERROR_DETAIL_HEADER],
        "tls: certificate refused (CertRefused)"
    );
    assert_eq!(res.headers()["grpc-message"], "connect");
    assert!(!format!("{:?}", res.headers()).contains("10.1.2.3"));
    let res = edge(false).oneshot(request()).await.unwrap();
    assert!(res.headers().get(&MESH_ERROR_DETAIL_HEADER).is_none());
}

#[tokio::test]
async fn successful_responses_pass_through() {
    let ok = service_fn(|_req: Request<Body>| async {
        let mut res = Response::new(Body::from("fine"));
        *res.status_mut() = StatusCode::ACCEPTED;
        Ok::<_, Infallible>(res)
    });
    let res = ErrorResponseLayer::new()
        .layer(ok)
        .oneshot(Request::new(Body::empty()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert!(res.headers().get(&MESH_ERROR_HEADER).is_none());
    assert_eq!(body_text(res).await, "fine");
}

/// A service whose readiness fails once, then recovers.
#[derive(Debug, Default)]
struct FlakyReady {
    failed_once: bool,
    calls: usize,
}

impl Service<Request<Body>> for FlakyReady {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.failed_once {
            Poll::Ready(Ok(()))
        } else {
            self.failed_once = true;
            Poll::Ready(Err(Box::new(NoEndpoints::new())))
        }
    }

    fn call(&mut self, _req: Request<Body>) -> Self::Future {
        self.calls += 1;
        std::future::ready(Ok(Response::new(Body::empty())))
    }
}

#[tokio::test]
async fn readiness_failure_answers_next_request_then_recovers() {
    let mut svc = ErrorResponseLayer::new().layer(FlakyReady::default());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(Body::empty()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[&MESH_ERROR_HEADER], "no_endpoints");
    assert_eq!(
        svc.get_ref().calls,
        0,
        "the inner service is not called after a readiness failure"
    );
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(Body::empty()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(svc.get_ref().calls, 1);
}
