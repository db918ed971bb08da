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
    /// Client side: `network.protocol.version` is the response's, not the request's.
    version_from_response: bool,
}

impl<F> ResponseFuture<F> {
    /// The server side's future: `cx` is made current while `inner` is polled.
    pub(crate) fn server(
        inner: F,
        cx: Context,
        classifier: MeshResponseClassifier,
        recorder: RequestRecorder,
    ) -> Self {
        Self {
            inner,
            attach: Some(cx),
            classifier,
            recorder: Some(recorder),
            version_from_response: false,
        }
    }

    /// The client side's future: the response's HTTP version is recorded.
    pub(crate) fn client(
        inner: F,
        classifier: MeshResponseClassifier,
        recorder: RequestRecorder,
    ) -> Self {
        Self {
            inner,
            attach: None,
            classifier,
            recorder: Some(recorder),
            version_from_response: true,
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
                if *this.version_from_response {
                    recorder.set_response_version(response.version());
                }
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
