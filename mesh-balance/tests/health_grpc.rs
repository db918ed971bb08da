//! gRPC health checks (`grpc.health.v1.Health/Check`) against a mock probe service.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use mesh_balance::health::{HealthCheck, HealthCheckConfig, HealthChecked, HealthState};
use mesh_core::Body;
use mesh_test::TestMetrics;
use tower_test::mock;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

/// A body made of the given frames, trailers included.
struct Frames(VecDeque<Frame<Bytes>>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

/// One answer to a health check call.
struct Answer {
    http_status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
    trailers: Option<&'static str>,
}

impl Answer {
    /// A normal unary answer: `message` framed, `grpc-status` in the trailers.
    fn unary(message: &[u8], grpc_status: &'static str) -> Self {
        Self {
            http_status: 200,
            headers: &[("content-type", "application/grpc")],
            body: frame(message),
            trailers: Some(grpc_status),
        }
    }

    /// A trailers-only answer: the status in the headers, no body.
    fn trailers_only(grpc_status: &'static str) -> Self {
        Self {
            http_status: 200,
            headers: match grpc_status {
                "0" => &[("content-type", "application/grpc"), ("grpc-status", "0")],
                "12" => &[("content-type", "application/grpc"), ("grpc-status", "12")],
                other => panic!("add a case for {other}"),
            },
            body: Vec::new(),
            trailers: None,
        }
    }

    fn into_response(self) -> Response<Body> {
        let mut frames = VecDeque::new();
        if !self.body.is_empty() {
            frames.push_back(Frame::data(Bytes::from(self.body)));
        }
        if let Some(status) = self.trailers {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", status.parse().unwrap());
            frames.push_back(Frame::trailers(trailers));
        }
        let mut response = Response::new(Body::new(Frames(frames)));
        *response.status_mut() = self.http_status.try_into().unwrap();
        for (name, value) in self.headers {
            response.headers_mut().insert(*name, value.parse().unwrap());
        }
        response
    }
}

fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

const SERVING: &[u8] = &[0x08, 1];
const NOT_SERVING: &[u8] = &[0x08, 2];
const SERVICE_UNKNOWN: &[u8] = &[0x08, 3];

fn config(meter: opentelemetry::metrics::Meter) -> HealthCheckConfig {
    HealthCheckConfig::new(HealthCheck::grpc("orders.v1.Orders"))
        .interval(Duration::from_secs(5))
        .seed(3)
        .unhealthy_threshold(1)
        .meter(meter)
}

/// Sends one answer to a fresh checker; returns the state after it and the probe's result
/// attribute as counted in `mesh.balance.health.probes`.
async fn judge(answer: Answer) -> (HealthState, String) {
    let metrics = TestMetrics::new();
    let (inner, _inner_handle) = mock::pair::<Request<Body>, Response<Body>>();
    let (probe, mut probes): (_, Handle) = mock::pair();
    let checked = HealthChecked::with_probe(inner, probe, &config(metrics.meter())).unwrap();

    let (_, send) = probes.next_request().await.unwrap();
    send.send_response(answer.into_response());
    // The next probe means the answer has been recorded.
    let _next = probes.next_request().await.unwrap();

    let probes = metrics.counter("mesh.balance.health.probes", "{probe}");
    // Every result has a series from the start, at 0; exactly one of them counted the probe.
    let points: Vec<_> = probes.points.iter().filter(|p| p.value != 0).collect();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].value, 1);
    let result = points[0]
        .attribute("mesh.balance.health.result")
        .expect("the result attribute");
    (checked.status().state(), result.to_string())
}

#[tokio::test(start_paused = true)]
async fn request_is_a_framed_health_check_call() {
    let (inner, _inner_handle) = mock::pair::<Request<Body>, Response<Body>>();
    let (probe, mut probes): (_, Handle) = mock::pair();
    let config = HealthCheckConfig::new(HealthCheck::grpc("orders.v1.Orders"));
    let _checked = HealthChecked::with_probe(inner, probe, &config).unwrap();

    let (request, _send) = probes.next_request().await.unwrap();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.uri(), "/grpc.health.v1.Health/Check");
    assert_eq!(request.headers()["content-type"], "application/grpc");
    assert_eq!(request.headers()["te"], "trailers");
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let mut expected = vec![0, 0, 0, 0, 18, 0x0a, 16];
    expected.extend_from_slice(b"orders.v1.Orders");
    assert_eq!(body, expected);
}

#[tokio::test(start_paused = true)]
async fn responses_are_judged() {
    use HealthState::{Healthy, Unhealthy};
    let cases: Vec<(&str, Answer, HealthState, &str)> = vec![
        ("SERVING", Answer::unary(SERVING, "0"), Healthy, "success"),
        (
            "NOT_SERVING",
            Answer::unary(NOT_SERVING, "0"),
            Unhealthy,
            "not_serving",
        ),
        (
            "SERVICE_UNKNOWN",
            Answer::unary(SERVICE_UNKNOWN, "0"),
            Unhealthy,
            "not_serving",
        ),
        (
            "status absent (UNKNOWN)",
            Answer::unary(&[], "0"),
            Unhealthy,
            "not_serving",
        ),
        (
            "UNIMPLEMENTED, trailers-only",
            Answer::trailers_only("12"),
            Unhealthy,
            "status",
        ),
        (
            "UNAVAILABLE in the trailers",
            Answer::unary(SERVING, "14"),
            Unhealthy,
            "status",
        ),
        (
            "OK in the headers, no trailers",
            Answer {
                body: frame(SERVING),
                ..Answer::trailers_only("0")
            },
            Healthy,
            "success",
        ),
        (
            "OK but no message",
            Answer::trailers_only("0"),
            Unhealthy,
            "malformed",
        ),
        (
            "no grpc-status at all",
            Answer {
                trailers: None,
                ..Answer::unary(SERVING, "0")
            },
            Unhealthy,
            "malformed",
        ),
        (
            "unreadable grpc-status",
            Answer::unary(SERVING, "zero"),
            Unhealthy,
            "malformed",
        ),
        (
            "truncated frame",
            Answer {
                body: vec![0, 0, 0, 0, 9, 0x08, 1],
                ..Answer::unary(SERVING, "0")
            },
            Unhealthy,
            "malformed",
        ),
        (
            "compressed frame",
            Answer {
                body: vec![1, 0, 0, 0, 2, 0x08, 1],
                ..Answer::unary(SERVING, "0")
            },
            Unhealthy,
            "malformed",
        ),
        (
            "garbage message",
            Answer::unary(&[0xff, 0xff], "0"),
            Unhealthy,
            "malformed",
        ),
        (
            "oversized body",
            Answer::unary(&vec![0x12; 8 * 1024], "0"),
            Unhealthy,
            "malformed",
        ),
        (
            "HTTP 503",
            Answer {
                http_status: 503,
                ..Answer::unary(SERVING, "0")
            },
            Unhealthy,
            "status",
        ),
    ];
    for (name, answer, state, result) in cases {
        assert_eq!(judge(answer).await, (state, result.to_owned()), "{name}");
    }
}
