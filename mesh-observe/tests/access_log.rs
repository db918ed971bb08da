//! The access log (feature `access-log`): one record per request, with the trace layer's ids, the
//! peer, status, duration on the tokio clock and the classifier's outcome.
#![cfg(feature = "access-log")]

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::Telemetry;
use common::body::TrailersBody;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_core::server::ConnectionInfo;
use mesh_core::{Identity, PeerIdentity};
use mesh_observe::access_log::{AccessLogLayer, AccessLogRecord};
use mesh_observe::{RouteTemplate, ServerTraceLayer};
use tokio_test::{assert_pending, assert_ready};
use tower::{Layer, Service, ServiceExt};

/// Polls `service` ready, as the mock requires before each call.
fn ready<S: Service<Request<()>>>(service: &mut S)
where
    S::Error: std::fmt::Debug,
{
    let mut ready = tokio_test::task::spawn(std::future::poll_fn(|cx| service.poll_ready(cx)));
    assert_ready!(ready.poll()).unwrap();
}

fn collecting_layer() -> (AccessLogLayer, Arc<Mutex<Vec<AccessLogRecord>>>) {
    let records = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&records);
    let layer =
        AccessLogLayer::with_sink(move |r: &AccessLogRecord| sink.lock().unwrap().push(r.clone()));
    (layer, records)
}

#[tokio::test]
async fn record_carries_trace_ids_peer_status_and_outcome() {
    let telemetry = Telemetry::new();
    let (log, records) = collecting_layer();
    let handler = tower::service_fn(|_req: Request<()>| async {
        let res = Response::builder()
            .header("content-type", "application/grpc")
            .body(TrailersBody::grpc_status(14))
            .unwrap();
        Ok::<_, Infallible>(res)
    });
    let service = ServerTraceLayer::new(telemetry.config()).layer(log.layer(handler));

    let mut req = Request::post("/orders.Orders/Get")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    req.extensions_mut().insert(ConnectionInfo::new(
        "10.0.0.7:5100".parse().unwrap(),
        "10.0.0.1:443".parse().unwrap(),
    ));
    let id = Identity::new("spiffe://prod.example/ns/shop/sa/web").unwrap();
    req.extensions_mut().insert(PeerIdentity::new(id));
    req.extensions_mut()
        .insert(RouteTemplate::from_static("/orders.Orders/Get"));
    let res = service.oneshot(req).await.unwrap();
    assert!(
        records.lock().unwrap().is_empty(),
        "written at body end, not before"
    );
    res.into_body().collect().await.unwrap();

    let records = records.lock().unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    let span = &telemetry.finished_spans()[0];
    assert_eq!(record.trace_id, span.span_context.trace_id());
    assert_eq!(record.span_id, span.span_context.span_id());
    assert_eq!(record.status, Some(StatusCode::OK));
    assert_eq!(record.outcome, "grpc_status", "from the trailers");
    let line = record.to_string();
    let expected = format!(
        "trace_id={} span_id={} peer=10.0.0.7:5100 peer_identity=spiffe://prod.example/ns/shop/sa/web \
         method=POST path=/orders.Orders/Get route=/orders.Orders/Get status=200 duration_ms=",
        span.span_context.trace_id(),
        span.span_context.span_id()
    );
    assert!(line.starts_with(&expected), "{line}");
    assert!(line.ends_with(" outcome=grpc_status"), "{line}");
}

#[tokio::test(start_paused = true)]
async fn duration_failures_and_cancellation() {
    let (log, records) = collecting_layer();
    let (mock, mut handle) = tower_test::mock::pair::<Request<()>, Response<Full<Bytes>>>();
    let mut service = log.layer(mock);
    handle.allow(3);

    // Answered after 1.5 s of paused time.
    ready(&mut service);
    let mut call = tokio_test::task::spawn(service.call(Request::get("/a%20b").body(()).unwrap()));
    assert_pending!(call.poll());
    tokio::time::advance(Duration::from_millis(1500)).await;
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(Full::new(Bytes::new())));
    drop(assert_ready!(call.poll()).unwrap());

    // Failed with a typed error.
    ready(&mut service);
    let mut call = tokio_test::task::spawn(service.call(Request::get("/b").body(()).unwrap()));
    assert_pending!(call.poll());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(mesh_core::error::Timeout::new());
    assert!(assert_ready!(call.poll()).is_err());

    // Abandoned before the response.
    ready(&mut service);
    let mut call = tokio_test::task::spawn(service.call(Request::get("/c").body(()).unwrap()));
    assert_pending!(call.poll());
    drop(call);

    let records = records.lock().unwrap();
    let summary: Vec<_> = records
        .iter()
        .map(|r| (r.path.as_str(), r.status.map(|s| s.as_u16()), r.outcome))
        .collect();
    assert_eq!(
        summary,
        [
            ("/a%20b", Some(200), "success"),
            ("/b", None, "timeout"),
            ("/c", None, "cancelled")
        ]
    );
    assert_eq!(records[0].duration, Duration::from_millis(1500));
    assert!(records[0].to_string().contains(" duration_ms=1500.000 "));
    assert!(
        records[1].to_string().contains(" status=- "),
        "{}",
        records[1]
    );
    assert!(
        records[0]
            .to_string()
            .starts_with("trace_id=00000000000000000000000000000000 ")
    );
}

#[tokio::test]
async fn default_sink_writes_a_tracing_event_without_a_subscriber() {
    let handler = tower::service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let service = AccessLogLayer::new().layer(handler);
    let res = service.oneshot(Request::new(())).await.unwrap();
    let body = res.into_body().collect().await.unwrap();
    assert!(body.to_bytes().is_empty());
}
