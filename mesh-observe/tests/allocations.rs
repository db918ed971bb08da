//! Heap allocations of one request through `ClientTrace`, counted by a counting global allocator,
//! with an OpenTelemetry SDK tracer that records every span (no exporter: what is counted is the
//! layer's and the SDK's own work, not an exporter's). The counts are deterministic, so they are
//! asserted exactly: a change that adds one fails here, and one that saves one must lower them.
//!
//! One test function only: the allocator counts every thread, and the test harness runs the
//! tests of one binary on several threads.

use std::alloc::System;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Empty};
use mesh_observe::{ClientTraceLayer, TraceConfig};
use opentelemetry::trace::{
    SpanBuilder, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider,
};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Answers `200` with an empty body at once.
#[derive(Clone, Copy, Debug)]
struct Answer;

impl Service<Request<()>> for Answer {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<()>) -> Self::Future {
        ready(Ok(Response::new(Empty::new())))
    }
}

/// The SDK's tracer under another type: the layer can only box it (and each of its spans).
struct Wrapped(SdkTracer);

impl Tracer for Wrapped {
    type Span = opentelemetry_sdk::trace::Span;

    fn build_with_context(
        &self,
        builder: SpanBuilder,
        parent_cx: &opentelemetry::Context,
    ) -> Self::Span {
        self.0.build_with_context(builder, parent_cx)
    }
}

fn count(f: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    let change = region.change();
    change.allocations + change.reallocations
}

/// A remote parent, sampled, with a `tracestate` of `state` (none when empty).
fn parent(state: &str) -> opentelemetry::Context {
    let state = if state.is_empty() {
        TraceState::default()
    } else {
        state.parse().unwrap()
    };
    opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        TraceFlags::SAMPLED,
        true,
        state,
    ))
}

/// Allocations of one request and its response body, after a warm-up; the request's parent is
/// `parent` (in its extensions), if any.
fn per_request(
    rt: &tokio::runtime::Runtime,
    config: TraceConfig,
    parent: Option<opentelemetry::Context>,
) -> usize {
    let service = ClientTraceLayer::new(config).layer(Answer);
    // Origin form with `Host`, as the sidecar forwards them; room for the trace headers the
    // layer adds, so the count is the layer's alone.
    let request = || {
        let mut req = Request::get("/api/reviews").body(()).unwrap();
        req.headers_mut().reserve(4);
        req.headers_mut()
            .insert("host", HeaderValue::from_static("reviews.test:9080"));
        if let Some(parent) = &parent {
            req.extensions_mut().insert(parent.clone());
        }
        req
    };
    let one = |req: Request<()>| {
        rt.block_on(async {
            let res = service.clone().oneshot(req).await.unwrap();
            res.into_body().collect().await.unwrap();
        });
    };
    // The authority cache learns the host; lazily made instruments and thread-locals settle.
    for _ in 0..10 {
        one(request());
    }
    let req = request();
    count(|| one(req))
}

#[test]
fn an_sdk_tracer_span_gets_its_attributes_in_one_list() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder().build();

    let sdk_config = || TraceConfig::new().tracer(provider.tracer("allocations"));
    let sdk = per_request(&rt, sdk_config(), None);
    let boxed = per_request(
        &rt,
        TraceConfig::new().tracer(Wrapped(provider.tracer("allocations"))),
        None,
    );
    // SDK tracer: the span's attribute list (sized for the end attributes too), `url.full`, the
    // `traceparent` value, and the recorded span's box (so that a request not recorded does not
    // carry 300 bytes of span in its future).
    assert_eq!(sdk, 4, "SDK tracer: {sdk} allocations per request");
    // Any other tracer: OpenTelemetry boxes the span instead, and the attributes set one by one
    // grow the span's list twice (4 from the request, a 5th at the end).
    assert_eq!(
        boxed,
        sdk + 1,
        "boxed tracer: {boxed} allocations per request"
    );

    // A remote parent without `tracestate` costs nothing more. With one of two members: the SDK
    // gives the child span a copy of the parent's trace state (its list, and each member's key
    // and value: 1 + 2 × 2), and the `tracestate` value sent is written into one allocation of
    // its exact size, which the header value takes over (1).
    assert_eq!(per_request(&rt, sdk_config(), Some(parent(""))), sdk);
    let with_state = per_request(&rt, sdk_config(), Some(parent("vendor=x,other=y")));
    assert_eq!(with_state, sdk + 5 + 1, "with a tracestate: {with_state}");

    // `IdOnlyTracer`: nothing recorded, so only the `traceparent` value is made (with a parent
    // or without).
    let id_only = || TraceConfig::new().tracer(mesh_observe::IdOnlyTracer::new());
    assert_eq!(per_request(&rt, id_only(), None), 1, "id-only tracer");
    assert_eq!(per_request(&rt, id_only(), Some(parent(""))), 1);
}
