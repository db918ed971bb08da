//! [`ResponseFuture`]: the balancer's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use mesh_core::BoxError;
use mesh_core::classify::{ClassifyResponse, ErrorKind, FailureClass, Outcome, observe_response};
use pin_project::pin_project;

use super::MeasuredBody;
use super::endpoint::EndpointTicket;

/// The future of [`Balance::call`](super::Balance): the endpoint's future, whose response body is
/// wrapped in a [`MeasuredBody`].
///
/// An error ends the request at once and counts as a failure for the endpoint's outlier gate.
/// Dropping the future before it completes cancels the request: it stops counting as pending and
/// tells the gate nothing.
#[pin_project]
pub struct ResponseFuture<F, C> {
    #[pin]
    inner: F,
    state: Option<(C, EndpointTicket)>,
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("done", &self.state.is_none())
            .finish_non_exhaustive()
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn new(inner: F, classifier: C, ticket: EndpointTicket) -> Self {
        Self {
            inner,
            state: Some((classifier, ticket)),
        }
    }
}

impl<F, C, B, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    C: ClassifyResponse<FailureClass = FailureClass>,
{
    type Output = Result<Response<MeasuredBody<B, C::ClassifyEos>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let (classifier, mut ticket) = this
            .state
            .take()
            .expect("ResponseFuture polled after completion");
        match result {
            Ok(response) => Poll::Ready(Ok(observe_response(classifier, response, ticket))),
            Err(error) => {
                let error = error.into();
                let kind = ErrorKind::of_dyn(&*error);
                // A failure that says nothing about the endpoint (the client's malformed request,
                // a saturated local pool) is recorded as if cancelled: no latency sample, no
                // verdict for ejection.
                let outcome = Outcome::Failure(FailureClass::Error(kind));
                ticket.complete(kind.is_endpoint_failure().then_some(&outcome));
                Poll::Ready(Err(error))
            }
        }
    }
}
