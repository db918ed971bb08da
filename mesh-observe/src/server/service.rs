//! [`ServerTrace`].

use std::borrow::Cow;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use mesh_core::PeerIdentity;
use mesh_core::classify::{MakeClassifier, MeshClassifier};
use mesh_core::server::ConnectionInfo;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanBuilder, SpanKind};
use tower_service::Service;

use crate::config::TraceConfig;
use crate::future::{ResponseFuture, TracedBody};
use crate::metrics::RequestInstruments;
use crate::propagation;
use crate::recorder::{
    MetricAttributes, RequestRecorder, RequestSpan, method_name, protocol_version, scheme_name,
};
use crate::route::RouteTemplate;
use crate::tracer::LayerTracer;

/// Traces and measures the requests `S` serves; built by [`ServerTraceLayer`](super::ServerTraceLayer).
///
/// Readiness is the inner service's: this layer never holds requests back. Errors of `S` are
/// returned unchanged (and recorded with their [`ErrorKind`](mesh_core::classify::ErrorKind) as
/// `error.type`). Clones share the tracer and instruments.
#[derive(Clone, Debug)]
pub struct ServerTrace<S> {
    inner: S,
    tracer: LayerTracer,
    classifier: MeshClassifier,
    instruments: Arc<RequestInstruments>,
}

impl<S> ServerTrace<S> {
    /// Wraps `inner`, recording with `config` (instruments are created here; prefer the layer when
    /// wrapping many services, so they share one set).
    pub fn new(inner: S, config: &TraceConfig) -> Self {
        let instruments =
            RequestInstruments::new(&config.resolve_meter(), crate::metrics::Side::Server);
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

impl<S, ReqB, ResB> Service<Request<ReqB>> for ServerTrace<S>
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
        let rejected = &self.instruments.rejected;
        let parent =
            propagation::extract_context(req.headers(), |r| rejected.record(r)).unwrap_or_default();
        let method = method_name(req.method());
        let route = req.extensions().get::<RouteTemplate>();
        let name: Cow<'static, str> = match (route, method) {
            (Some(route), "_OTHER") => format!("HTTP {route}").into(),
            (Some(route), method) => format!("{method} {route}").into(),
            (None, "_OTHER") => "HTTP".into(),
            (None, method) => method.into(),
        };
        let attributes = MetricAttributes {
            method,
            scheme: scheme_name(req.uri()),
            route: route.map(RouteTemplate::to_value),
            protocol: protocol_version(req.version()),
            ..MetricAttributes::default()
        };
        let builder = SpanBuilder::from_name(name).with_kind(SpanKind::Server);
        let mut span = self
            .tracer
            .start(builder, &parent, || request_attributes(&req, &attributes));
        if !span.attributes_given() && span.is_recording() {
            for attribute in request_attributes(&req, &attributes) {
                span.set_attribute(attribute);
            }
        }
        let cx = span.into_context(&parent);
        req.extensions_mut().insert(cx.clone());

        let classifier = self.classifier.make_classifier(&req);
        let recorder = RequestRecorder::start(
            RequestSpan::Context(cx.clone()),
            Arc::clone(&self.instruments),
            attributes,
        );
        let future = {
            let _current = cx.clone().attach();
            self.inner.call(req)
        };
        ResponseFuture::server(future, cx, classifier, recorder)
    }
}

/// The most attributes a server span gets: eleven from the request, then status code,
/// `error.type` and `rpc.grpc.status_code` at the end.
const SPAN_ATTRIBUTES: usize = 14;

/// The span attributes known from the request (only built when the span may record), in a list
/// with room for those set at the end, so that a span that keeps it never grows it.
fn request_attributes<B>(req: &Request<B>, attrs: &MetricAttributes) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(SPAN_ATTRIBUTES);
    out.push(KeyValue::new("http.request.method", attrs.method));
    if attrs.method == "_OTHER" {
        out.push(KeyValue::new(
            "http.request.method_original",
            req.method().to_string(),
        ));
    }
    out.push(KeyValue::new("url.path", req.uri().path().to_owned()));
    if let Some(scheme) = attrs.scheme {
        out.push(KeyValue::new("url.scheme", scheme));
    }
    if let Some(route) = &attrs.route {
        out.push(KeyValue::new("http.route", route.clone()));
    }
    if let Some(protocol) = attrs.protocol {
        out.push(KeyValue::new("network.protocol.version", protocol));
    }
    if let Some((host, port)) = host_and_port(req) {
        out.push(KeyValue::new("server.address", host));
        if let Some(port) = port {
            out.push(KeyValue::new("server.port", i64::from(port)));
        }
    }
    if let Some(info) = req.extensions().get::<ConnectionInfo>() {
        let peer = info.peer_addr();
        out.push(KeyValue::new("network.peer.address", peer.ip().to_string()));
        out.push(KeyValue::new("network.peer.port", i64::from(peer.port())));
    }
    if let Some(identity) = req.extensions().get::<PeerIdentity>() {
        out.push(KeyValue::new(
            "mesh.peer.identity",
            identity.as_str().to_owned(),
        ));
    }
    out
}

/// The host the client addressed: the URI authority (HTTP/2, absolute-form), else `Host`.
fn host_and_port<B>(req: &Request<B>) -> Option<(String, Option<u16>)> {
    if let Some(authority) = req.uri().authority() {
        return Some((authority.host().to_owned(), authority.port_u16()));
    }
    let host = req.headers().get(http::header::HOST)?.to_str().ok()?;
    let authority: http::uri::Authority = host.parse().ok()?;
    Some((authority.host().to_owned(), authority.port_u16()))
}
