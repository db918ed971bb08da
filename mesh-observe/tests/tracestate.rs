//! The W3C Trace Context test suite's `tracestate` cases (`test_tracestate_key_length_limit`,
//! `test_tracestate_duplicated_keys`), end to end: a server layer extracts the caller's context, a
//! client layer called from the handler injects it; and the same through `W3cPropagator`.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use common::{Telemetry, attr_str};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mesh_observe::metrics::TRACE_CONTEXT_REJECTED;
use mesh_observe::propagation::W3cPropagator;
use mesh_observe::{ClientTraceLayer, ServerTraceLayer};
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use tokio::sync::mpsc;
use tower::{Layer, Service, ServiceExt};

/// The suite's parent: not sampled, so the SDK's spans still continue the trace.
const TRACEPARENT: &str = "00-12345678901234567890123456789012-1234567890123456-00";

/// Sends a request with the suite's `traceparent` and these `tracestate` lines through a server
/// layer whose handler calls a backend through a client layer; returns the `tracestate` the
/// client sent (`None` when it sent none) and the rejections counted.
async fn forwarded(lines: &[&str]) -> (Option<String>, Vec<String>) {
    let telemetry = Telemetry::new();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let transport = tower::service_fn(move |req: Request<()>| {
        let _ = tx.send(req.headers().clone());
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
    });
    let client = ClientTraceLayer::new(telemetry.config()).layer(transport);
    let handler = tower::service_fn(move |req: Request<()>| {
        let mut client = client.clone();
        async move {
            let mut call = Request::get("http://backend.shop/").body(()).unwrap();
            if let Some(cx) = req.extensions().get::<Context>() {
                call.extensions_mut().insert(cx.clone());
            }
            let res = client.ready().await?.call(call).await?;
            res.into_body().collect().await.unwrap();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
        }
    });
    let mut server = ServerTraceLayer::new(telemetry.config()).layer(handler);

    let mut req = Request::get("/test").header("traceparent", TRACEPARENT);
    for line in lines {
        req = req.header("tracestate", *line);
    }
    let res = server
        .ready()
        .await
        .unwrap()
        .call(req.body(()).unwrap())
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();

    let sent = seen.recv().await.expect("the handler called the backend");
    let traceparent = sent["traceparent"].to_str().unwrap();
    assert!(
        traceparent.starts_with("00-12345678901234567890123456789012-"),
        "the trace continues: {traceparent}"
    );
    let state = sent
        .get("tracestate")
        .map(|value| value.to_str().unwrap().to_owned());
    let rejected = telemetry
        .sums(TRACE_CONTEXT_REJECTED)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(attrs, _)| {
            let header = attr_str(&attrs, "header").unwrap();
            let reason = attr_str(&attrs, "reason").unwrap();
            format!("{header}/{reason}")
        })
        .collect();
    (state, rejected)
}

#[tokio::test]
async fn suite_key_length_limit() {
    let vendor14 = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
    let (state, rejected) = forwarded(&["foo=1", &vendor14]).await;
    assert_eq!(
        state.as_deref(),
        Some(format!("foo=1,{vendor14}").as_str()),
        "a 14-character system id is valid, and so is a 241-character tenant id"
    );
    assert!(rejected.is_empty(), "{rejected:?}");

    let simple256 = format!("{}=1", "z".repeat(256));
    let (state, rejected) = forwarded(&["foo=1", &simple256]).await;
    assert_eq!(state, Some(format!("foo=1,{simple256}")));
    assert!(rejected.is_empty(), "{rejected:?}");

    let too_long = [
        format!("{}=1", "z".repeat(257)),
        format!("{}@v=1", "t".repeat(242)),
        format!("t@{}=1", "v".repeat(15)),
    ];
    for line in &too_long {
        let (state, rejected) = forwarded(&["foo=1", line]).await;
        assert_eq!(state, None, "the whole list is discarded for {line}");
        assert_eq!(rejected, ["tracestate/malformed"], "{line}");
    }
}

#[tokio::test]
async fn suite_duplicated_keys_keep_the_first_occurrence() {
    let cases: &[(&[&str], &str)] = &[
        (&["foo=1,foo=1"], "foo=1"),
        (&["foo=1,foo=2"], "foo=1"),
        (&["foo=1", "foo=1"], "foo=1"),
        (&["foo=1", "foo=2"], "foo=1"),
        (&["foo=1,bar=2", "foo=3,baz=4"], "foo=1,bar=2,baz=4"),
    ];
    for (lines, expected) in cases {
        let (state, rejected) = forwarded(lines).await;
        assert_eq!(state.as_deref(), Some(*expected), "{lines:?}");
        assert!(rejected.is_empty(), "{lines:?}: {rejected:?}");
    }
}

#[test]
fn w3c_propagator_carries_a_list_the_sdk_trace_state_cannot_hold() {
    let telemetry = Telemetry::new();
    let meter = telemetry.metrics.meter();
    let propagator = W3cPropagator::with_meter(&meter);
    let state = format!("foo=1,t@{}=1,bar=2", "v".repeat(14));
    let incoming = HashMap::from([
        ("traceparent".to_owned(), TRACEPARENT.to_owned()),
        ("tracestate".to_owned(), format!("{state},foo=3")),
    ]);

    let cx = propagator.extract_with_context(&Context::new(), &incoming);
    assert!(cx.span().span_context().is_valid());
    let mut outgoing: HashMap<String, String> = HashMap::new();
    propagator.inject_context(&cx, &mut outgoing);
    assert_eq!(outgoing["traceparent"], TRACEPARENT);
    assert_eq!(outgoing.get("tracestate"), Some(&state));
    let rejected: i128 = telemetry
        .sums(TRACE_CONTEXT_REJECTED)
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(rejected, 0);
}

#[test]
fn carried_list_follows_local_members_and_stays_in_its_trace() {
    use http::HeaderMap;
    use mesh_observe::propagation::{Propagation, extract_context, inject_context};
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    let vendor14 = format!("t@{}", "v".repeat(14));
    let mut incoming = HeaderMap::new();
    incoming.insert("traceparent", TRACEPARENT.parse().unwrap());
    let state = format!("foo=1,{vendor14}=2,ot=old");
    incoming.insert("tracestate", state.parse().unwrap());
    let parent = extract_context(&incoming, |r| panic!("{r}")).unwrap();
    let remote = parent.span().span_context().clone();
    assert_eq!(
        remote.trace_state(),
        &TraceState::NONE,
        "the SDK refused it"
    );

    let child = |trace_id: TraceId, state: TraceState| {
        let span = SpanContext::new(trace_id, SpanId::from(7), TraceFlags::SAMPLED, false, state);
        parent.with_remote_span_context(span)
    };
    let sent = |cx: &Context| {
        let mut headers = HeaderMap::new();
        inject_context(cx, Propagation::default(), &mut headers);
        headers
            .get("tracestate")
            .map(|value| value.to_str().unwrap().to_owned())
    };

    // A member the local SDK added (a sampler's `ot`, say) goes first and replaces the old one.
    let local = TraceState::from_key_value([("ot", "th:8")]).unwrap();
    assert_eq!(
        sent(&child(remote.trace_id(), local.clone())),
        Some(format!("ot=th:8,foo=1,{vendor14}=2"))
    );
    assert_eq!(
        sent(&child(remote.trace_id(), TraceState::NONE)),
        Some(state)
    );
    // A span of another trace does not inherit the list.
    assert_eq!(
        sent(&child(TraceId::from(99), local)),
        Some("ot=th:8".to_owned())
    );
    assert_eq!(sent(&child(TraceId::from(99), TraceState::NONE)), None);
}
