//! [`ResponseFuture`]: the future both trace layers return.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use http::Response;
use mesh_core::classify::{
    ErrorKind, FailureClass, GrpcEosClassifier, MeshResponseClassifier, ObservedBody, Outcome,
    observe_response,
};
use opentelemetry::Context;
use pin_project::pin_project;

use crate::recorder::{Ended, RequestRecorder};

/// The response body of a traced request: the inner body, observed until its end so that the span
/// and the duration include the whole body and gRPC trailers. Adds no allocation.
pub type TracedBody<B> = ObservedBody<B, GrpcEosClassifier, RequestRecorder>;

/// The response future of [`ServerTrace`](crate::ServerTrace) and
/// [`ClientTrace`](crate::ClientTrace).
///
/// On the server side it makes the request's span the current OpenTelemetry context while the inner
/// future is polled, so client calls made from inside the handler (through a
/// [`ClientTrace`](crate::ClientTrace)) become its children. Dropping it before the response
/// arrives records the request as cancelled.
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    attach: Option<Context>,
    classifier: MeshResponseClassifier,
    recorder: Option<RequestRecorder>,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        inner: F,
        attach: Option<Context>,
        classifier: MeshResponseClassifier,
        recorder: RequestRecorder,
    ) -> Self {
        Self {
            inner,
            attach,
            classifier,
            recorder: Some(recorder),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: 'static,
{
    type Output = Result<Response<TracedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let guard = this.attach.as_ref().map(|otel| otel.clone().attach());
        let result = ready!(this.inner.poll(cx));
        drop(guard);
        let mut recorder = this
            .recorder
            .take()
            .expect("ResponseFuture polled after completion");
        Poll::Ready(match result {
            Ok(response) => {
                recorder.set_status(response.status());
                Ok(observe_response(*this.classifier, response, recorder))
            }
            Err(error) => {
                let class = FailureClass::Error(ErrorKind::of(&error));
                recorder.finish(Ended::Outcome(Outcome::Failure(class)));
                Err(error)
            }
        })
    }
}
