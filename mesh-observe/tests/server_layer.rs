//! ServerTraceLayer: span attributes, parentage, status from the classifier (gRPC trailers
//! included), request metrics, rejected-header counting, cancellation.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use common::body::TrailersBody;
use common::{Telemetry, attr, attr_str};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mesh_core::server::ConnectionInfo;
use mesh_core::{Identity, PeerIdentity};
use mesh_observe::metrics::{
    DURATION_BOUNDARIES, HTTP_SERVER_ACTIVE_REQUESTS, HTTP_SERVER_REQUEST_DURATION,
    TRACE_CONTEXT_REJECTED,
};
use mesh_observe::{RouteTemplate, ServerTraceLayer};
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceContextExt, TraceId};
use tokio_test::{assert_pending, assert_ready};
use tower::{Layer, Service, ServiceExt};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn ok_handler()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone {
    tower::service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
}

#[tokio::test]
async fn span_continues_the_trace_with_semconv_attributes() {
    let telemetry = Telemetry::new();
    let mut service = ServerTraceLayer::new(telemetry.config()).layer(ok_handler());

    let mut req = Request::get("/orders/42?x=1")
        .header("host", "orders.shop:8443")
        .header("traceparent", PARENT)
        .body(())
        .unwrap();
    let peer = "127.0.0.1:40000".parse().unwrap();
    req.extensions_mut()
        .insert(ConnectionInfo::new(peer, "127.0.0.1:8443".parse().unwrap()));
    req.extensions_mut()
        .insert(RouteTemplate::from_static("/orders/{id}"));
    let id = Identity::new("spiffe://prod.example/ns/shop/sa/web").unwrap();
    req.extensions_mut().insert(PeerIdentity::new(id));

    let res = service.ready().await.unwrap().call(req).await.unwrap();
    assert!(
        telemetry.finished_spans().is_empty(),
        "the span lasts until the body ends"
    );
    res.into_body().collect().await.unwrap();

    let spans = telemetry.finished_spans();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.name, "GET /orders/{id}");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(
        span.span_context.trace_id(),
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(
        span.parent_span_id,
        SpanId::from_hex("00f067aa0ba902b7").unwrap()
    );
    assert_ne!(span.span_context.span_id(), span.parent_span_id);
    assert!(span.parent_span_is_remote);
    assert_eq!(span.status, Status::Unset);
    let a = &span.attributes;
    assert_eq!(attr_str(a, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr_str(a, "http.route").as_deref(), Some("/orders/{id}"));
    assert_eq!(attr_str(a, "url.path").as_deref(), Some("/orders/42"));
    assert_eq!(
        attr_str(a, "server.address").as_deref(),
        Some("orders.shop")
    );
    assert_eq!(attr(a, "server.port"), Some(Value::I64(8443)));
    assert_eq!(
        attr_str(a, "network.peer.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(attr(a, "network.peer.port"), Some(Value::I64(40000)));
    assert_eq!(
        attr_str(a, "network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        attr_str(a, "mesh.peer.identity").as_deref(),
        Some("spiffe://prod.example/ns/shop/sa/web")
    );
    assert_eq!(attr(a, "http.response.status_code"), Some(Value::I64(200)));
    assert_eq!(attr(a, "error.type"), None);

    let points = telemetry.histogram(HTTP_SERVER_REQUEST_DURATION);
    assert_eq!(points.len(), 1);
    let point = &points[0];
    assert_eq!(point.count(), 1);
    assert_eq!(point.bounds().collect::<Vec<_>>(), DURATION_BOUNDARIES);
    let attrs: Vec<_> = point.attributes().cloned().collect();
    assert_eq!(
        attr_str(&attrs, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attr_str(&attrs, "http.route").as_deref(),
        Some("/orders/{id}")
    );
    assert_eq!(
        attr(&attrs, "http.response.status_code"),
        Some(Value::I64(200))
    );
    assert_eq!(attr(&attrs, "url.path"), None, "no raw paths in metrics");
    assert_eq!(
        attr(&attrs, "network.peer.address"),
        None,
        "no peer addresses in metrics"
    );
    assert_eq!(attr(&attrs, "error.type"), None);

    let active = telemetry.sums(HTTP_SERVER_ACTIVE_REQUESTS);
    assert_eq!(active.iter().map(|(_, n)| n).sum::<i128>(), 0);
}

#[tokio::test]
async fn grpc_status_in_trailers_sets_the_span_status() {
    let telemetry = Telemetry::new();
    let handler = tower::service_fn(|_req: Request<()>| async {
        let res = Response::builder()
            .header("content-type", "application/grpc")
            .body(TrailersBody::grpc_status(14))
            .unwrap();
        Ok::<_, Infallible>(res)
    });
    let mut service = ServerTraceLayer::new(telemetry.config()).layer(handler);
    let req = Request::post("/orders.Orders/Get")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let res = service.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let collected = res.into_body().collect().await.unwrap();
    assert!(collected.trailers().is_some(), "trailers pass through");

    let spans = telemetry.finished_spans();
    let span = &spans[0];
    assert_eq!(span.name, "POST");
    assert_eq!(span.status, Status::error("grpc_status"));
    assert_eq!(
        attr_str(&span.attributes, "error.type").as_deref(),
        Some("grpc_status")
    );
    assert_eq!(
        attr(&span.attributes, "rpc.grpc.status_code"),
        Some(Value::I64(14))
    );
    assert!(
        !span.parent_span_id.to_bytes().iter().any(|b| *b != 0),
        "no parent: a root span"
    );

    let points = telemetry.histogram(HTTP_SERVER_REQUEST_DURATION);
    let attrs: Vec<_> = points[0].attributes().cloned().collect();
    assert_eq!(
        attr_str(&attrs, "error.type").as_deref(),
        Some("grpc_status")
    );
    assert_eq!(
        attr(&attrs, "http.response.status_code"),
        Some(Value::I64(200))
    );
}

#[tokio::test]
async fn inner_errors_are_recorded_by_kind_and_returned_unchanged() {
    let telemetry = Telemetry::new();
    let handler = tower::service_fn(|_req: Request<()>| async {
        Err::<Response<Full<Bytes>>, mesh_core::BoxError>(
            Box::new(mesh_core::error::Timeout::new()),
        )
    });
    let mut service = ServerTraceLayer::new(telemetry.config()).layer(handler);
    let err = service
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    assert!(err.is::<mesh_core::error::Timeout>());

    let span = &telemetry.finished_spans()[0];
    assert_eq!(span.status, Status::error("timeout"));
    assert_eq!(attr(&span.attributes, "http.response.status_code"), None);
    let points = telemetry.histogram(HTTP_SERVER_REQUEST_DURATION);
    let attrs: Vec<_> = points[0].attributes().cloned().collect();
    assert_eq!(attr_str(&attrs, "error.type").as_deref(), Some("timeout"));
}

#[tokio::test]
async fn http_5xx_is_a_failure_and_4xx_is_not() {
    let telemetry = Telemetry::new();
    let handler = tower::service_fn(|req: Request<()>| async move {
        let status: u16 = req.uri().path()[1..].parse().unwrap();
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = status.try_into().unwrap();
        Ok::<_, Infallible>(res)
    });
    let mut service = ServerTraceLayer::new(telemetry.config()).layer(handler);
    for path in ["/404", "/502"] {
        let req = Request::get(path).body(()).unwrap();
        let res = service.ready().await.unwrap().call(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    let spans = telemetry.finished_spans();
    assert_eq!(spans[0].status, Status::Unset);
    assert_eq!(spans[1].status, Status::error("http_status"));
    let points = telemetry.histogram(HTTP_SERVER_REQUEST_DURATION);
    assert_eq!(points.len(), 2, "one series per status code");
}

#[tokio::test]
async fn malformed_trace_headers_are_counted_and_start_a_new_trace() {
    let telemetry = Telemetry::new();
    let mut service = ServerTraceLayer::new(telemetry.config()).layer(ok_handler());
    let bad = [
        (
            "traceparent",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ),
        ("b3", "not-a-b3"),
        ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
    ];
    for _ in 0..2 {
        let mut req = Request::get("/").body(()).unwrap();
        for (name, value) in bad {
            req.headers_mut().insert(name, value.parse().unwrap());
        }
        let res = service.ready().await.unwrap().call(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    for span in telemetry.finished_spans() {
        assert_eq!(
            span.parent_span_id,
            SpanId::INVALID,
            "a new trace, not a child"
        );
        assert!(span.span_context.is_valid());
    }
    let mut counts: Vec<_> = telemetry
        .sums(TRACE_CONTEXT_REJECTED)
        .into_iter()
        .map(|(attrs, n)| {
            let header = attr_str(&attrs, "header").unwrap();
            let reason = attr_str(&attrs, "reason").unwrap();
            (header, reason, n)
        })
        .filter(|(_, _, n)| *n > 0)
        .collect();
    counts.sort();
    let expected = [
        ("b3", "malformed", 2),
        ("traceparent", "malformed", 2),
        ("x-b3", "malformed", 2),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(h, r, n)| (h.to_string(), r.to_string(), *n))
        .collect();
    assert_eq!(counts, expected);
}

#[tokio::test]
async fn the_span_is_current_and_in_the_extensions_while_the_handler_runs() {
    let telemetry = Telemetry::new();
    let handler = tower::service_fn(|req: Request<()>| async move {
        let current = opentelemetry::Context::current()
            .span()
            .span_context()
            .clone();
        let carried = req.extensions().get::<opentelemetry::Context>().unwrap();
        assert_eq!(&current, carried.span().span_context());
        assert!(current.is_valid());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let mut service = ServerTraceLayer::new(telemetry.config()).layer(handler);
    let res = service
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();
    let spans = telemetry.finished_spans();
    assert_eq!(spans.len(), 1);
    assert!(
        !opentelemetry::Context::current()
            .span()
            .span_context()
            .is_valid()
    );
}

#[tokio::test(start_paused = true)]
async fn duration_is_measured_on_the_tokio_clock_and_cancellation_is_recorded() {
    let telemetry = Telemetry::new();
    let (mock, mut handle) = tower_test::mock::pair::<Request<()>, Response<Full<Bytes>>>();
    let mut service = ServerTraceLayer::new(telemetry.config()).layer(mock);

    // A response after 300 ms of (paused) time lands in the (0.25, 0.5] bucket.
    handle.allow(2);
    let mut ready = tokio_test::task::spawn(service.ready());
    assert_ready!(ready.poll()).unwrap();
    drop(ready);
    let mut call = tokio_test::task::spawn(service.call(Request::get("/").body(()).unwrap()));
    assert_pending!(call.poll());
    tokio::time::advance(Duration::from_millis(300)).await;
    let (_req, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(Full::new(Bytes::new())));
    let res = assert_ready!(call.poll()).unwrap();
    drop(res);

    // A call whose future is dropped before the response is recorded as cancelled.
    let mut ready = tokio_test::task::spawn(service.ready());
    assert_ready!(ready.poll()).unwrap();
    drop(ready);
    let mut call = tokio_test::task::spawn(service.call(Request::get("/").body(()).unwrap()));
    assert_pending!(call.poll());
    drop(call);

    let points = telemetry.histogram(HTTP_SERVER_REQUEST_DURATION);
    assert_eq!(points.len(), 2);
    let ok = points
        .iter()
        .find(|p| attr(p.attributes(), "error.type").is_none())
        .unwrap();
    assert!((ok.sum() - 0.3).abs() < 1e-9, "sum {}", ok.sum());
    let buckets: Vec<u64> = ok.bucket_counts().collect();
    assert_eq!(buckets[7], 1, "0.3 s is in (0.25, 0.5]: {buckets:?}");
    let cancelled = points
        .iter()
        .find(|p| attr_str(p.attributes(), "error.type").as_deref() == Some("cancelled"))
        .expect("cancelled request recorded");
    assert_eq!(cancelled.count(), 1);
    let active = telemetry.sums(HTTP_SERVER_ACTIVE_REQUESTS);
    assert_eq!(active.iter().map(|(_, n)| n).sum::<i128>(), 0);
    assert_eq!(
        telemetry.finished_spans().len(),
        2,
        "the cancelled span is ended too"
    );
}

#[tokio::test]
async fn unknown_methods_are_folded_into_other() {
    let telemetry = Telemetry::new();
    let mut service = ServerTraceLayer::new(telemetry.config()).layer(ok_handler());
    let req = Request::builder()
        .method("BREW")
        .uri("/pot")
        .body(())
        .unwrap();
    let res = service.ready().await.unwrap().call(req).await.unwrap();
    res.into_body().collect().await.unwrap();
    let span = &telemetry.finished_spans()[0];
    assert_eq!(span.name, "HTTP");
    assert_eq!(
        attr_str(&span.attributes, "http.request.method").as_deref(),
        Some("_OTHER")
    );
    assert_eq!(
        attr_str(&span.attributes, "http.request.method_original").as_deref(),
        Some("BREW")
    );
    let points = telemetry.histogram(HTTP_SERVER_REQUEST_DURATION);
    let attrs: Vec<_> = points[0].attributes().cloned().collect();
    assert_eq!(
        attr_str(&attrs, "http.request.method").as_deref(),
        Some("_OTHER")
    );
}

#[tokio::test]
async fn rejection_series_exist_at_zero_before_any_request() {
    let telemetry = Telemetry::new();
    let _service = ServerTraceLayer::new(telemetry.config()).layer(ok_handler());

    let mut series: Vec<(String, String, i128)> = telemetry
        .sums(TRACE_CONTEXT_REJECTED)
        .into_iter()
        .map(|(attrs, n)| {
            let header = attr_str(&attrs, "header").unwrap();
            (header, attr_str(&attrs, "reason").unwrap(), n)
        })
        .collect();
    series.sort();
    let expected = [
        ("b3", "duplicate"),
        ("b3", "malformed"),
        ("b3", "oversized"),
        ("traceparent", "duplicate"),
        ("traceparent", "invalid_version"),
        ("traceparent", "malformed"),
        ("traceparent", "oversized"),
        ("tracestate", "malformed"),
        ("tracestate", "oversized"),
        ("tracestate", "too_many_members"),
        ("x-b3", "duplicate"),
        ("x-b3", "malformed"),
        ("x-b3", "oversized"),
    ]
    .map(|(header, reason)| (header.to_owned(), reason.to_owned(), 0));
    assert_eq!(series, expected);
}
