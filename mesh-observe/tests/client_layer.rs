//! ClientTraceLayer: parent selection, injection of the child span, attributes and metrics,
//! failures, and pass-through with no provider.

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use common::{Telemetry, attr, attr_str};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use mesh_observe::metrics::{HTTP_CLIENT_ACTIVE_REQUESTS, HTTP_CLIENT_REQUEST_DURATION};
use mesh_observe::propagation::{B3Encoding, Propagation, extract};
use mesh_observe::{ClientTraceLayer, TraceConfig};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer, TracerProvider,
};
use opentelemetry::{Context, Value};
use tokio::sync::mpsc;
use tower::{Layer, Service, ServiceExt};

/// A transport that answers 200 and hands the request headers it saw to the test.
fn recording_transport() -> (
    impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone,
    mpsc::UnboundedReceiver<HeaderMap>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let service = tower::service_fn(move |req: Request<()>| {
        let _ = tx.send(req.headers().clone());
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
    });
    (service, rx)
}

fn remote_parent() -> SpanContext {
    SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("vendor", "x")]).unwrap(),
    )
}

#[tokio::test]
async fn child_span_of_the_extension_parent_is_injected() {
    let telemetry = Telemetry::new();
    let (transport, mut seen) = recording_transport();
    let mut client = ClientTraceLayer::new(telemetry.config()).layer(transport);

    let mut req = Request::post("http://inventory.shop:9000/stock?sku=1")
        .header("b3", "stale-from-the-caller")
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(Context::new().with_remote_span_context(remote_parent()));
    let res = client.ready().await.unwrap().call(req).await.unwrap();
    res.into_body().collect().await.unwrap();

    let sent = seen.recv().await.unwrap();
    assert!(!sent.contains_key("b3"), "stale trace headers are removed");
    assert_eq!(sent["tracestate"], "vendor=x");
    let injected = extract(&sent, |r| panic!("{r}")).unwrap();

    let spans = telemetry.finished_spans();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.span_kind, SpanKind::Client);
    assert_eq!(span.name, "POST");
    assert_eq!(span.span_context.trace_id(), remote_parent().trace_id());
    assert_eq!(span.parent_span_id, remote_parent().span_id());
    assert_eq!(
        injected.trace_id(),
        remote_parent().trace_id(),
        "same trace"
    );
    assert_eq!(
        injected.span_id(),
        span.span_context.span_id(),
        "the new span is the parent"
    );
    assert_ne!(injected.span_id(), remote_parent().span_id());
    assert!(injected.is_sampled(), "the sampling decision travels");
    let a = &span.attributes;
    assert_eq!(
        attr_str(a, "server.address").as_deref(),
        Some("inventory.shop")
    );
    assert_eq!(attr(a, "server.port"), Some(Value::I64(9000)));
    assert_eq!(
        attr_str(a, "url.full").as_deref(),
        Some("http://inventory.shop:9000/stock?sku=1")
    );
    assert_eq!(attr(a, "http.response.status_code"), Some(Value::I64(200)));

    let points = telemetry.histogram(HTTP_CLIENT_REQUEST_DURATION);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].count(), 1);
    let attrs: Vec<_> = points[0].attributes().cloned().collect();
    assert_eq!(
        attr_str(&attrs, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        attr_str(&attrs, "server.address").as_deref(),
        Some("inventory.shop")
    );
    assert_eq!(attr(&attrs, "server.port"), Some(Value::I64(9000)));
    assert_eq!(
        attr(&attrs, "http.response.status_code"),
        Some(Value::I64(200))
    );
    assert_eq!(attr(&attrs, "url.full"), None);
    let active = telemetry.sums(HTTP_CLIENT_ACTIVE_REQUESTS);
    assert_eq!(active.iter().map(|(_, n)| n).sum::<i128>(), 0);
}

#[tokio::test]
async fn current_context_is_the_parent_when_the_request_has_none() {
    let telemetry = Telemetry::new();
    let (transport, mut seen) = recording_transport();
    let mut client = ClientTraceLayer::new(telemetry.config()).layer(transport);
    let tracer = telemetry.tracer_provider.tracer("outer");
    let outer = tracer.start("outer");
    let outer_cx = Context::current_with_span(outer);
    let outer_id = outer_cx.span().span_context().clone();

    let future = {
        let _attached = outer_cx.clone().attach();
        client
            .ready()
            .await
            .unwrap()
            .call(Request::get("http://a/").body(()).unwrap())
    };
    future.await.unwrap().into_body().collect().await.unwrap();
    let injected = extract(&seen.recv().await.unwrap(), |r| panic!("{r}")).unwrap();
    assert_eq!(injected.trace_id(), outer_id.trace_id());

    let span = &telemetry.finished_spans()[0];
    assert_eq!(span.parent_span_id, outer_id.span_id());
    assert_eq!(
        attr(&span.attributes, "server.port"),
        Some(Value::I64(80)),
        "port from scheme"
    );
}

#[tokio::test]
async fn b3_formats_are_injected_when_configured() {
    let telemetry = Telemetry::new();
    for (encoding, header) in [
        (B3Encoding::Single, "b3"),
        (B3Encoding::Multi, "x-b3-spanid"),
    ] {
        let (transport, mut seen) = recording_transport();
        let config = telemetry
            .config()
            .propagation(Propagation::default().w3c(false).b3(Some(encoding)));
        let mut client = ClientTraceLayer::new(config).layer(transport);
        let res = client
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        drop(res);
        let sent = seen.recv().await.unwrap();
        assert!(sent.contains_key(header), "{encoding:?}");
        assert!(!sent.contains_key("traceparent"), "{encoding:?}");
        assert!(extract(&sent, |r| panic!("{r}")).is_some());
    }
}

#[tokio::test]
async fn transport_errors_fail_the_span_with_their_kind() {
    let telemetry = Telemetry::new();
    let transport = tower::service_fn(|_req: Request<()>| async {
        let cause = mesh_core::error::Timeout::new();
        Err::<Response<Full<Bytes>>, mesh_core::BoxError>(Box::new(
            mesh_core::error::ConnectError::new(cause),
        ))
    });
    let mut client = ClientTraceLayer::new(telemetry.config()).layer(transport);
    let err = client
        .ready()
        .await
        .unwrap()
        .call(Request::get("http://down:81/").body(()).unwrap())
        .await
        .unwrap_err();
    assert!(
        err.is::<mesh_core::error::ConnectError>(),
        "errors pass through unchanged"
    );

    let span = &telemetry.finished_spans()[0];
    assert_eq!(span.status, Status::error("connect"));
    let points = telemetry.histogram(HTTP_CLIENT_REQUEST_DURATION);
    let attrs: Vec<_> = points[0].attributes().cloned().collect();
    assert_eq!(attr_str(&attrs, "error.type").as_deref(), Some("connect"));
    assert_eq!(attr(&attrs, "http.response.status_code"), None);
}

#[tokio::test]
async fn without_a_provider_the_incoming_context_is_forwarded_unchanged() {
    // The default configuration uses the global providers; no test installs one, so both are
    // OpenTelemetry's no-ops.
    let (transport, mut seen) = recording_transport();
    let mut client = ClientTraceLayer::new(TraceConfig::new()).layer(transport);

    let mut req = Request::new(());
    req.extensions_mut()
        .insert(Context::new().with_remote_span_context(remote_parent()));
    drop(client.ready().await.unwrap().call(req).await.unwrap());
    let forwarded = extract(&seen.recv().await.unwrap(), |r| panic!("{r}")).unwrap();
    assert_eq!(forwarded.trace_id(), remote_parent().trace_id());
    assert_eq!(forwarded.span_id(), remote_parent().span_id());

    // No parent, no provider: nothing to propagate, and stale headers are still removed.
    let req = Request::get("/")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(())
        .unwrap();
    drop(client.ready().await.unwrap().call(req).await.unwrap());
    let sent = seen.recv().await.unwrap();
    assert!(!sent.contains_key("traceparent"), "{sent:?}");
}

#[tokio::test]
async fn protocol_version_is_the_responses() {
    let telemetry = Telemetry::new();
    for (version, expected) in [
        (http::Version::HTTP_2, "2"),
        (http::Version::HTTP_11, "1.1"),
        (http::Version::HTTP_10, "1.0"),
    ] {
        // The request says HTTP/1.1 (its default); the connection negotiated `version`.
        let transport = tower::service_fn(move |_req: Request<()>| async move {
            let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
            *res.version_mut() = version;
            Ok::<_, Infallible>(res)
        });
        let mut client = ClientTraceLayer::new(telemetry.config()).layer(transport);
        let req = Request::get("http://a/").body(()).unwrap();
        assert_eq!(req.version(), http::Version::HTTP_11);
        let res = client.ready().await.unwrap().call(req).await.unwrap();
        res.into_body().collect().await.unwrap();

        let spans = telemetry.finished_spans();
        let span = spans.last().unwrap();
        let versions: Vec<_> = span
            .attributes
            .iter()
            .filter(|kv| kv.key.as_str() == "network.protocol.version")
            .map(|kv| kv.value.as_str().into_owned())
            .collect();
        assert_eq!(versions, [expected], "one attribute, the response's");
    }
    let mut seen: Vec<String> = telemetry
        .histogram(HTTP_CLIENT_REQUEST_DURATION)
        .iter()
        .map(|point| {
            let attrs: Vec<_> = point.attributes().cloned().collect();
            attr_str(&attrs, "network.protocol.version").unwrap()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ["1.0", "1.1", "2"]);
}

/// The SDK's tracer under another type, which the layer can only box.
struct Wrapped(opentelemetry_sdk::trace::SdkTracer);

impl Tracer for Wrapped {
    type Span = opentelemetry_sdk::trace::Span;

    fn build_with_context(
        &self,
        builder: opentelemetry::trace::SpanBuilder,
        parent_cx: &Context,
    ) -> Self::Span {
        self.0.build_with_context(builder, parent_cx)
    }
}

#[tokio::test]
async fn a_boxed_tracer_and_the_sdks_own_record_the_same_span() {
    let mut recorded = Vec::new();
    for boxed in [false, true] {
        let telemetry = Telemetry::new();
        let tracer = telemetry.tracer_provider.tracer("test");
        let config = if boxed {
            TraceConfig::new().tracer(Wrapped(tracer))
        } else {
            TraceConfig::new().tracer(tracer)
        }
        .meter(telemetry.metrics.meter());
        let (transport, _seen) = recording_transport();
        let client = ClientTraceLayer::new(config).layer(transport);
        // A non-standard method: the most request attributes a client span gets.
        let req = Request::builder()
            .method("PURGE")
            .uri("http://inventory.shop:9000/stock?sku=1")
            .body(())
            .unwrap();
        let res = client.oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap();
        let spans = telemetry.finished_spans();
        assert_eq!(spans.len(), 1);
        let mut attributes: Vec<_> = spans[0]
            .attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        attributes.sort();
        recorded.push((spans[0].name.clone(), attributes));
    }
    assert_eq!(recorded[0], recorded[1]);
    let (name, attributes) = &recorded[0];
    assert_eq!(name, "HTTP");
    let keys: Vec<_> = attributes.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "http.request.method",
            "http.request.method_original",
            "http.response.status_code",
            "network.protocol.version",
            "server.address",
            "server.port",
            "url.full",
        ]
    );
}

#[tokio::test]
async fn an_unsampled_parent_gets_an_unsampled_child_and_no_span() {
    let telemetry = Telemetry::new();
    let (transport, mut seen) = recording_transport();
    let client = ClientTraceLayer::new(telemetry.config()).layer(transport);
    let parent = SpanContext::new(
        remote_parent().trace_id(),
        remote_parent().span_id(),
        TraceFlags::default(),
        true,
        TraceState::default(),
    );
    let mut req = Request::get("http://inventory.shop/").body(()).unwrap();
    req.extensions_mut()
        .insert(Context::new().with_remote_span_context(parent));
    let res = client.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();

    let injected = extract(&seen.recv().await.unwrap(), |r| panic!("{r}")).unwrap();
    assert_eq!(injected.trace_id(), remote_parent().trace_id());
    assert!(!injected.is_sampled(), "the decision travels");
    assert!(telemetry.finished_spans().is_empty(), "nothing recorded");
}

/// `IdOnlyTracer`: the same `traceparent` as the SDK's tracer would send (the caller's trace,
/// a span id of this hop's own, the caller's flags and `tracestate`; a sampled root without a
/// caller), and the request metrics as before.
#[tokio::test]
async fn the_id_only_tracer_sends_a_child_of_its_own_and_records_the_metrics() {
    let telemetry = Telemetry::new();
    let config = TraceConfig::new()
        .tracer(mesh_observe::IdOnlyTracer::new())
        .meter(telemetry.metrics.meter());
    let (transport, mut seen) = recording_transport();
    let client = ClientTraceLayer::new(config).layer(transport);

    let unsampled = SpanContext::new(
        remote_parent().trace_id(),
        remote_parent().span_id(),
        TraceFlags::default(),
        true,
        remote_parent().trace_state().clone(),
    );
    let mut span_ids = Vec::new();
    for parent in [Some(remote_parent()), Some(unsampled), None] {
        let mut req = Request::get("http://inventory.shop/").body(()).unwrap();
        if let Some(parent) = &parent {
            req.extensions_mut()
                .insert(Context::new().with_remote_span_context(parent.clone()));
        }
        let res = client.clone().oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap();

        let sent = seen.recv().await.unwrap();
        let injected = extract(&sent, |r| panic!("{r}")).unwrap();
        assert!(injected.is_valid());
        span_ids.push(injected.span_id());
        match parent {
            Some(parent) => {
                assert_eq!(injected.trace_id(), parent.trace_id());
                assert_ne!(injected.span_id(), parent.span_id());
                assert_eq!(injected.is_sampled(), parent.is_sampled());
                assert_eq!(sent["tracestate"], "vendor=x");
            }
            None => {
                assert_ne!(injected.trace_id(), remote_parent().trace_id());
                assert!(
                    injected.is_sampled(),
                    "a root is sampled, as ParentBased(AlwaysOn)"
                );
                assert!(!sent.contains_key("tracestate"));
            }
        }
    }
    assert!(
        span_ids[0] != span_ids[1] && span_ids[1] != span_ids[2] && span_ids[0] != span_ids[2],
        "each request is a span of its own: {span_ids:?}"
    );
    assert!(telemetry.finished_spans().is_empty(), "nothing recorded");

    let points = telemetry.histogram(HTTP_CLIENT_REQUEST_DURATION);
    assert_eq!(points.iter().map(|p| p.count()).sum::<u64>(), 3);
}

/// The request metrics are recorded per series exactly, whether the layer records a series
/// unbound or through the handles it binds (SDK builds keep up to 32 duration series and every
/// active-requests series bound): more distinct status codes than that, each answered twice, on
/// two methods, give one duration series per method and status with two points each, and the
/// active-requests series count a request in flight until its body ends.
#[tokio::test]
async fn every_series_is_recorded_exactly_past_the_bound_series() {
    let telemetry = Telemetry::new();
    let transport = tower::service_fn(|req: Request<()>| {
        let status: u16 = req.uri().path()[1..].parse().unwrap();
        async move {
            let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
            *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(res)
        }
    });
    let mut client = ClientTraceLayer::new(telemetry.config()).layer(transport);
    let statuses: Vec<u16> = (200..220).chain(500..520).collect();
    for round in 0..2 {
        for method in [http::Method::GET, http::Method::PUT] {
            for status in &statuses {
                let req = Request::builder()
                    .method(method.clone())
                    .uri(format!("http://inventory.shop/{status}"))
                    .body(())
                    .unwrap();
                let res = client.ready().await.unwrap().call(req).await.unwrap();
                assert_eq!(res.status().as_u16(), *status, "round {round}");
                res.into_body().collect().await.unwrap();
            }
        }
    }

    let points = telemetry.histogram(HTTP_CLIENT_REQUEST_DURATION);
    assert_eq!(
        points.len(),
        2 * statuses.len(),
        "one series per method and status"
    );
    for point in &points {
        let attrs: Vec<_> = point.attributes().cloned().collect();
        assert_eq!(point.count(), 2, "{attrs:?}");
        let method = attr_str(&attrs, "http.request.method").unwrap();
        assert!(method == "GET" || method == "PUT", "{method}");
        assert_eq!(attr_str(&attrs, "url.scheme").as_deref(), Some("http"));
        assert_eq!(
            attr_str(&attrs, "server.address").as_deref(),
            Some("inventory.shop")
        );
        assert_eq!(attr(&attrs, "server.port"), Some(Value::I64(80)));
        let Some(Value::I64(status)) = attr(&attrs, "http.response.status_code") else {
            panic!("no status code in {attrs:?}");
        };
        assert!(statuses.contains(&(status as u16)));
        let error = attr_str(&attrs, "error.type");
        assert_eq!(error.is_some(), status >= 500, "{attrs:?}");
    }

    // In flight: counted in its own series until its body ends.
    let req = Request::get("http://inventory.shop/204").body(()).unwrap();
    let res = client.ready().await.unwrap().call(req).await.unwrap();
    let active = telemetry.sums(HTTP_CLIENT_ACTIVE_REQUESTS);
    assert_eq!(active.len(), 2, "GET and PUT over http: {active:?}");
    for (attrs, n) in &active {
        let method = attr_str(attrs, "http.request.method").unwrap();
        assert_eq!(attr_str(attrs, "url.scheme").as_deref(), Some("http"));
        assert_eq!(*n, i128::from(method == "GET"), "{attrs:?}");
    }
    res.into_body().collect().await.unwrap();
    let active = telemetry.sums(HTTP_CLIENT_ACTIVE_REQUESTS);
    assert!(active.iter().all(|(_, n)| *n == 0), "{active:?}");
}
