//! OTLP export (feature `otlp`): spans and metrics recorded by the trace layers reach an OTLP/HTTP
//! receiver started here, which decodes the protobuf wire format by hand (no generated code, so
//! the test checks the bytes the exporter really sends).
#![cfg(feature = "otlp")]

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use mesh_core::BoxError;
use mesh_core::server::Server;
use mesh_observe::otlp::{OtlpConfig, OtlpPipeline};
use mesh_observe::{RouteTemplate, ServerTraceLayer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt};

/// One protobuf field: its number and its value.
#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Varint(u32, u64),
    Fixed64(u32, u64),
    Bytes(u32, &'a [u8]),
    /// A 32-bit value; OTLP uses none the test looks at.
    Fixed32,
}

fn varint(buf: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = buf[0];
        *buf = &buf[1..];
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    value
}

/// Splits a message into its fields (wire types 0, 1, 2 and 5; groups are not used by OTLP).
fn fields(mut buf: &[u8]) -> Vec<Field<'_>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf);
        let number = (key >> 3) as u32;
        match key & 7 {
            0 => out.push(Field::Varint(number, varint(&mut buf))),
            1 => {
                let (value, rest) = buf.split_at(8);
                out.push(Field::Fixed64(
                    number,
                    u64::from_le_bytes(value.try_into().unwrap()),
                ));
                buf = rest;
            }
            2 => {
                let len = varint(&mut buf) as usize;
                let (value, rest) = buf.split_at(len);
                out.push(Field::Bytes(number, value));
                buf = rest;
            }
            5 => {
                buf = &buf[4..];
                out.push(Field::Fixed32);
            }
            wire => panic!("unexpected wire type {wire}"),
        }
    }
    out
}

/// The length-delimited values of field `number`.
fn messages(buf: &[u8], number: u32) -> Vec<&[u8]> {
    fields(buf)
        .into_iter()
        .filter_map(|f| match f {
            Field::Bytes(n, value) if n == number => Some(value),
            _ => None,
        })
        .collect()
}

fn string(buf: &[u8], number: u32) -> Option<String> {
    messages(buf, number)
        .first()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
}

/// `KeyValue` list (field `number`) as (key, string or int value rendered as text).
fn attributes(buf: &[u8], number: u32) -> Vec<(String, String)> {
    messages(buf, number)
        .into_iter()
        .map(|kv| {
            let key = string(kv, 1).unwrap();
            let any = messages(kv, 2)[0];
            let value = match fields(any).first() {
                Some(Field::Bytes(1, s)) => String::from_utf8(s.to_vec()).unwrap(),
                Some(Field::Varint(3, i)) => i.to_string(),
                other => format!("{other:?}"),
            };
            (key, value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_an_otlp_http_receiver() {
    // The receiver: every POST body goes to the test, keyed by path.
    let (tx, mut received) = mpsc::unbounded_channel::<(String, String, Bytes)>();
    let receiver = tower::service_fn(move |req: Request<Incoming>| {
        let tx = tx.clone();
        async move {
            let path = req.uri().path().to_owned();
            let content_type = req.headers()["content-type"].to_str()?.to_owned();
            let body = req.into_body().collect().await?.to_bytes();
            let _ = tx.send((path, content_type, body));
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::new())))
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(receiver));

    let otlp = OtlpPipeline::new(
        OtlpConfig::default()
            .endpoint(format!("http://{addr}/"))
            .service_name("orders"),
    )
    .unwrap();
    let app = tower::service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let service = ServerTraceLayer::new(otlp.trace_config("test")).layer(app);
    let mut req = Request::get("/orders/7")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(RouteTemplate::from_static("/orders/{id}"));
    let res = service.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();

    tokio::task::spawn_blocking(move || otlp.shutdown())
        .await
        .unwrap()
        .unwrap();

    let mut traces = None;
    let mut metrics = None;
    while traces.is_none() || metrics.is_none() {
        let (path, content_type, body) = received.recv().await.expect("an export");
        assert_eq!(content_type, "application/x-protobuf", "{path}");
        match path.as_str() {
            "/v1/traces" => traces = Some(body),
            "/v1/metrics" => metrics = Some(body),
            other => panic!("unexpected export path {other}"),
        }
    }

    // ExportTraceServiceRequest → ResourceSpans(1) → ScopeSpans(2) → Span(2).
    let traces = traces.unwrap();
    let resource_spans = messages(&traces, 1);
    assert_eq!(resource_spans.len(), 1);
    let resource = messages(resource_spans[0], 1)[0];
    assert!(attributes(resource, 1).contains(&("service.name".into(), "orders".into())));
    let scope_spans = messages(resource_spans[0], 2);
    let span = messages(scope_spans[0], 2)[0];
    assert_eq!(string(span, 5).as_deref(), Some("GET /orders/{id}"));
    assert_eq!(
        messages(span, 1)[0],
        hex("4bf92f3577b34da6a3ce929d0e0e4736"),
        "trace id"
    );
    assert_eq!(
        messages(span, 4)[0],
        hex("00f067aa0ba902b7"),
        "parent span id"
    );
    assert!(
        fields(span)
            .iter()
            .any(|f| matches!(f, Field::Varint(6, 2))),
        "kind SERVER"
    );
    let attrs = attributes(span, 9);
    assert!(
        attrs.contains(&("http.route".into(), "/orders/{id}".into())),
        "{attrs:?}"
    );
    assert!(
        attrs.contains(&("http.response.status_code".into(), "200".into())),
        "{attrs:?}"
    );

    // ExportMetricsServiceRequest → ResourceMetrics(1) → ScopeMetrics(2) → Metric(2).
    let metrics = metrics.unwrap();
    let mut names = Vec::new();
    let mut duration_count = None;
    for resource_metrics in messages(&metrics, 1) {
        for scope_metrics in messages(resource_metrics, 2) {
            for metric in messages(scope_metrics, 2) {
                let name = string(metric, 1).unwrap();
                if name == "http.server.request.duration" {
                    assert_eq!(string(metric, 3).as_deref(), Some("s"));
                    let histogram = messages(metric, 9)[0];
                    let point = messages(histogram, 1)[0];
                    duration_count = fields(point).iter().find_map(|f| match f {
                        Field::Fixed64(4, count) => Some(*count),
                        _ => None,
                    });
                    let attrs = attributes(point, 9);
                    assert!(attrs.contains(&("http.route".into(), "/orders/{id}".into())));
                    let bounds = messages(point, 7)[0];
                    let bounds: Vec<f64> = bounds
                        .chunks(8)
                        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                        .collect();
                    assert_eq!(bounds, mesh_observe::metrics::DURATION_BOUNDARIES);
                }
                names.push(name);
            }
        }
    }
    assert!(
        names.contains(&"http.server.active_requests".to_owned()),
        "{names:?}"
    );
    assert_eq!(duration_count, Some(1), "{names:?}");
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
