//! [`ClientTrace`].

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use mesh_core::classify::{MakeClassifier, MeshClassifier};
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{Span, SpanBuilder, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, StringValue};
use tower_service::Service;

use crate::config::TraceConfig;
use crate::future::{ResponseFuture, TracedBody};
use crate::metrics::{RequestInstruments, Side};
use crate::propagation::{self, Propagation};
use crate::recorder::{MetricAttributes, RequestRecorder, method_name, scheme_name};

/// Traces, measures and propagates the requests sent through `S`; built by
/// [`ClientTraceLayer`](super::ClientTraceLayer).
///
/// Readiness is the inner service's. Errors of `S` are returned unchanged (and recorded with their
/// [`ErrorKind`](mesh_core::classify::ErrorKind) as `error.type`). Clones share the tracer and
/// instruments.
#[derive(Clone, Debug)]
pub struct ClientTrace<S> {
    inner: S,
    tracer: Arc<BoxedTracer>,
    classifier: MeshClassifier,
    propagation: Propagation,
    instruments: Arc<RequestInstruments>,
}

impl<S> ClientTrace<S> {
    /// Wraps `inner`, recording with `config` (instruments are created here; prefer the layer when
    /// wrapping many services, so they share one set).
    pub fn new(inner: S, config: &TraceConfig) -> Self {
        let instruments = RequestInstruments::new(&config.resolve_meter(), Side::Client);
        Self::from_parts(inner, config, Arc::new(instruments))
    }

    pub(crate) fn from_parts(
        inner: S,
        config: &TraceConfig,
        instruments: Arc<RequestInstruments>,
    ) -> Self {
        Self {
            inner,
            tracer: config.resolve_tracer(),
            classifier: config.classifier,
            propagation: config.propagation,
            instruments,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ClientTrace<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: 'static,
{
    type Response = Response<TracedBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let parent = match req.extensions().get::<Context>() {
            Some(parent) => parent.clone(),
            None => Context::current(),
        };
        let method = method_name(req.method());
        let scheme = scheme_name(req.uri());
        let (address, port) = server_address(&req, scheme);
        let attributes = MetricAttributes {
            method,
            scheme,
            server_address: address.map(StringValue::from),
            server_port: port.map(i64::from),
            // The version the connection used is only known from the response; see
            // `RequestRecorder::set_response_version`.
            protocol: None,
            route: None,
        };
        let name = if method == "_OTHER" { "HTTP" } else { method };
        let builder = SpanBuilder::from_name(name).with_kind(SpanKind::Client);
        let mut span = self.tracer.build_with_context(builder, &parent);
        if span.is_recording() {
            span.set_attributes(request_attributes(&req, &attributes));
        }
        let cx = parent.with_span(span);
        propagation::inject_context(&cx, self.propagation, req.headers_mut());

        let classifier = self.classifier.make_classifier(&req);
        let recorder = RequestRecorder::start(cx, Arc::clone(&self.instruments), attributes);
        ResponseFuture::client(self.inner.call(req), classifier, recorder)
    }
}

/// `server.address` and `server.port`: from the URI, else the `Host` header; the port defaults
/// from the scheme as the semantic conventions ask.
fn server_address<B>(req: &Request<B>, scheme: Option<&str>) -> (Option<String>, Option<u16>) {
    let authority = req.uri().authority().cloned().or_else(|| {
        let host = req.headers().get(http::header::HOST)?.to_str().ok()?;
        host.parse::<http::uri::Authority>().ok()
    });
    let Some(authority) = authority else {
        return (None, None);
    };
    let port = authority.port_u16().or(match scheme {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    });
    (Some(authority.host().to_owned()), port)
}

/// The span attributes known from the request (only built when the span is recording).
fn request_attributes<B>(req: &Request<B>, attrs: &MetricAttributes) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(6);
    out.push(KeyValue::new("http.request.method", attrs.method));
    if attrs.method == "_OTHER" {
        out.push(KeyValue::new(
            "http.request.method_original",
            req.method().to_string(),
        ));
    }
    out.push(KeyValue::new("url.full", req.uri().to_string()));
    if let Some(address) = &attrs.server_address {
        out.push(KeyValue::new("server.address", address.clone()));
    }
    if let Some(port) = attrs.server_port {
        out.push(KeyValue::new("server.port", port));
    }
    out
}
