//! [`ClientTrace`].

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use mesh_core::classify::{MakeClassifier, MeshClassifier};
use opentelemetry::trace::{SpanBuilder, SpanKind};
use opentelemetry::{Context, KeyValue};
use tower_service::Service;

use super::authority::AuthorityCache;
use crate::config::TraceConfig;
use crate::future::{ResponseFuture, TracedBody};
use crate::metrics::{RequestInstruments, Side};
use crate::propagation::{self, Propagation};
use crate::recorder::{MetricAttributes, RequestRecorder, RequestSpan, method_name, scheme_name};
use crate::tracer::LayerTracer;

/// Traces, measures and propagates the requests sent through `S`; built by
/// [`ClientTraceLayer`](super::ClientTraceLayer).
///
/// Readiness is the inner service's. Errors of `S` are returned unchanged (and recorded with their
/// [`ErrorKind`](mesh_core::classify::ErrorKind) as `error.type`). Clones share the tracer and
/// instruments (and the cache of `server.address` values).
#[derive(Clone, Debug)]
pub struct ClientTrace<S> {
    inner: S,
    tracer: LayerTracer,
    classifier: MeshClassifier,
    propagation: Propagation,
    instruments: Arc<RequestInstruments>,
    authorities: Arc<AuthorityCache>,
}

impl<S> ClientTrace<S> {
    /// Wraps `inner`, recording with `config` (instruments are created here; prefer the layer when
    /// wrapping many services, so they share one set).
    pub fn new(inner: S, config: &TraceConfig) -> Self {
        let instruments = RequestInstruments::new(&config.resolve_meter(), Side::Client);
        Self::from_parts(
            inner,
            config,
            Arc::new(instruments),
            Arc::new(AuthorityCache::default()),
        )
    }

    pub(crate) fn from_parts(
        inner: S,
        config: &TraceConfig,
        instruments: Arc<RequestInstruments>,
        authorities: Arc<AuthorityCache>,
    ) -> Self {
        Self {
            inner,
            tracer: config.resolve_tracer(),
            classifier: config.classifier,
            propagation: config.propagation,
            instruments,
            authorities,
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
        let address = self.authorities.server_address(&req, scheme);
        let attributes = MetricAttributes {
            method,
            scheme,
            server_address: address.as_ref().map(|a| a.host.clone()),
            server_port: address.as_ref().and_then(|a| a.port).map(i64::from),
            // The version the connection used is only known from the response; see
            // `RequestRecorder::set_response_version`.
            protocol: None,
            route: None,
        };
        let name = if method == "_OTHER" { "HTTP" } else { method };
        let builder = SpanBuilder::from_name(name).with_kind(SpanKind::Client);
        let mut span = self.tracer.start(builder, &parent, || {
            let mut list = Vec::with_capacity(SPAN_ATTRIBUTES);
            list.extend(request_attributes(&req, &attributes));
            list
        });
        if !span.attributes_given() && span.is_recording() {
            for attribute in request_attributes(&req, &attributes) {
                span.set_attribute(attribute);
            }
        }
        // The span is not put in a context: nothing below needs it as one (the parent's carried
        // trace state is read from `parent`), and the recorder ends it.
        propagation::inject_child(
            span.span_context(),
            &parent,
            self.propagation,
            req.headers_mut(),
        );

        let classifier = self.classifier.make_classifier(&req);
        let recorder = RequestRecorder::start(
            RequestSpan::Span(span),
            Arc::clone(&self.instruments),
            attributes,
        );
        ResponseFuture::client(self.inner.call(req), classifier, recorder)
    }
}

/// The most attributes a client span gets: five from the request, then status code,
/// `network.protocol.version`, `error.type` and `rpc.grpc.status_code` at the end.
const SPAN_ATTRIBUTES: usize = 9;

/// The span attributes known from the request (only made when the span may record), without a
/// list of their own: the caller puts them in the span's list (sized with [`SPAN_ATTRIBUTES`])
/// or sets them one by one.
fn request_attributes<B>(
    req: &Request<B>,
    attrs: &MetricAttributes,
) -> impl Iterator<Item = KeyValue> {
    let original = (attrs.method == "_OTHER")
        .then(|| KeyValue::new("http.request.method_original", req.method().to_string()));
    [
        Some(KeyValue::new("http.request.method", attrs.method)),
        original,
        Some(KeyValue::new("url.full", url_full(req.uri()))),
        attrs
            .server_address
            .as_ref()
            .map(|address| KeyValue::new("server.address", address.clone())),
        attrs
            .server_port
            .map(|port| KeyValue::new("server.port", port)),
    ]
    .into_iter()
    .flatten()
}

/// The URI as `url.full`, written into one allocation of the exact size (its `Display` would grow
/// a string piece by piece). Same text as `uri.to_string()`.
fn url_full(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str();
    let authority = uri.authority().map(http::uri::Authority::as_str);
    let path = uri.path();
    let query = uri.query();
    let len = scheme.map_or(0, |s| s.len() + 3)
        + authority.map_or(0, str::len)
        + path.len()
        + query.map_or(0, |q| q.len() + 1);
    let mut out = String::with_capacity(len);
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(authority) = authority {
        out.push_str(authority);
    }
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}
