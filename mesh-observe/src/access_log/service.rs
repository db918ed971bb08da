//! [`AccessLog`] and its future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use mesh_core::PeerIdentity;
use mesh_core::classify::{
    ErrorKind, GrpcEosClassifier, MakeClassifier, MeshClassifier, MeshResponseClassifier,
    ObservedBody, observe_response,
};
use mesh_core::server::ConnectionInfo;
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use pin_project::pin_project;
use tower_service::Service;

use super::layer::Sink;
use super::{AccessLogRecord, LogOnEnd};
use crate::RouteTemplate;

/// The response body of a logged request: observed until its end. Adds no allocation.
pub type AccessLogBody<B> = ObservedBody<B, GrpcEosClassifier, LogOnEnd>;

/// Writes one access-log record per request `S` serves; built by
/// [`AccessLogLayer`](super::AccessLogLayer). Readiness and errors are the inner service's.
/// Clones share the sink.
#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
    sink: Sink,
    classifier: MeshClassifier,
}

impl<S: std::fmt::Debug> std::fmt::Debug for AccessLog<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> AccessLog<S> {
    pub(crate) fn from_parts(inner: S, sink: Sink, classifier: MeshClassifier) -> Self {
        Self {
            inner,
            sink,
            classifier,
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

impl<S, ReqB, ResB> Service<Request<ReqB>> for AccessLog<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: 'static,
{
    type Response = Response<AccessLogBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let span = match req.extensions().get::<Context>() {
            Some(cx) => cx.span().span_context().clone(),
            None => Context::current().span().span_context().clone(),
        };
        let record = AccessLogRecord {
            trace_id: span.trace_id(),
            span_id: span.span_id(),
            peer_addr: req
                .extensions()
                .get::<ConnectionInfo>()
                .map(ConnectionInfo::peer_addr),
            peer_identity: req.extensions().get::<PeerIdentity>().cloned(),
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            route: req.extensions().get::<RouteTemplate>().cloned(),
            status: None,
            duration: Duration::ZERO,
            outcome: "",
        };
        let classifier = self.classifier.make_classifier(&req);
        let log = LogOnEnd::new(record, Arc::clone(&self.sink));
        ResponseFuture {
            inner: self.inner.call(req),
            classifier,
            log: Some(log),
        }
    }
}

/// The response future of [`AccessLog`]. Dropping it before the response arrives writes the
/// record with outcome `cancelled`.
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    classifier: MeshResponseClassifier,
    log: Option<LogOnEnd>,
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: 'static,
{
    type Output = Result<Response<AccessLogBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let mut log = this
            .log
            .take()
            .expect("ResponseFuture polled after completion");
        Poll::Ready(match result {
            Ok(response) => {
                log.set_status(response.status());
                Ok(observe_response(*this.classifier, response, log))
            }
            Err(error) => {
                log.write(ErrorKind::of(&error).as_str());
                Err(error)
            }
        })
    }
}
