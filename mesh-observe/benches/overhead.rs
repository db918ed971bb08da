//! Per-request overhead of the trace layers: a bare service, then the same service behind
//! `ServerTraceLayer` + `ClientTraceLayer` (one inbound and one outbound hop's worth of work), with
//! no provider installed (OpenTelemetry no-ops) and with the SDK installed (spans recorded and
//! discarded by a processor, metrics aggregated by a reader whose hourly export never comes during the run).
//!
//! Each iteration builds a request carrying a W3C `traceparent`, calls the stack, and reads the
//! response body to its end (the layers finish their work there). Allocation counts come from
//! divan's `AllocProfiler`. Run with `cargo bench -p towermesh-observe`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use mesh_observe::{ClientTraceLayer, ServerTraceLayer, TraceConfig};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanProcessor};
use tower::{Layer, Service};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn handler()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone {
    tower::service_fn(|_req: Request<()>| {
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    })
}

/// Calls `service` once and drains the response body, polling with a no-op waker: every future
/// here is ready at once, so no executor is needed (and none is measured).
fn one_request<S, B>(service: &mut S)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let req = Request::get("http://orders:8080/items/42")
        .header("traceparent", TRACEPARENT)
        .body(())
        .unwrap();
    let future = pin!(service.call(req));
    let Poll::Ready(Ok(response)) = future.poll(&mut cx) else {
        panic!("the bench service answers at once");
    };
    let mut body = pin!(response.into_body());
    while let Poll::Ready(Some(_)) = body.as_mut().poll_frame(&mut cx) {}
}

fn traced(
    config: TraceConfig,
) -> impl Service<Request<()>, Response = Response<impl Body>, Error = Infallible> {
    let client = ClientTraceLayer::new(config.clone()).layer(handler());
    ServerTraceLayer::new(config).layer(client)
}

#[derive(Debug)]
struct Discard;

impl SpanProcessor for Discard {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        divan::black_box(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn sdk_config() -> (TraceConfig, SdkTracerProvider, SdkMeterProvider) {
    let tracer_provider = SdkTracerProvider::builder()
        .with_span_processor(Discard)
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(InMemoryMetricExporter::default())
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    let config = TraceConfig::new()
        .tracer(tracer_provider.tracer("bench"))
        .meter(meter_provider.meter("bench"));
    (config, tracer_provider, meter_provider)
}

/// The service alone: the baseline the layers are compared with.
#[divan::bench]
fn bare_service(bencher: divan::Bencher<'_, '_>) {
    let mut service = handler();
    bencher.bench_local(|| one_request(&mut service));
}

/// Server + client layers, no OpenTelemetry provider installed.
#[divan::bench]
fn server_and_client_no_provider(bencher: divan::Bencher<'_, '_>) {
    let mut service = traced(TraceConfig::new());
    bencher.bench_local(|| one_request(&mut service));
}

/// Server + client layers recording into the OpenTelemetry SDK.
#[divan::bench]
fn server_and_client_sdk(bencher: divan::Bencher<'_, '_>) {
    let (config, _tracer_provider, _meter_provider) = sdk_config();
    let mut service = traced(config);
    bencher.bench_local(|| one_request(&mut service));
}

/// Only the server layer, no provider: the inbound cost alone.
#[divan::bench]
fn server_only_no_provider(bencher: divan::Bencher<'_, '_>) {
    let mut service = ServerTraceLayer::new(TraceConfig::new()).layer(handler());
    bencher.bench_local(|| one_request(&mut service));
}

/// Only the server layer, SDK installed.
#[divan::bench]
fn server_only_sdk(bencher: divan::Bencher<'_, '_>) {
    let (config, _tracer_provider, _meter_provider) = sdk_config();
    let mut service = ServerTraceLayer::new(config).layer(handler());
    bencher.bench_local(|| one_request(&mut service));
}
