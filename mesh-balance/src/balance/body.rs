//! [`MeasuredBody`]: the response body that ends the request's measurement when it ends.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use mesh_core::classify::{ClassifyEos, ErrorKind, FailureClass, Outcome};
use pin_project::pin_project;

use super::endpoint::Ticket;

/// A response body from the balancer: the endpoint's body, unchanged, plus the bookkeeping that
/// ends the request when the body does.
///
/// The request counts as pending on its endpoint, and its round-trip time keeps running, until the
/// body reaches its end (or trailers), returns an error, or is dropped. Its outcome — from the
/// response head, or from the trailers for gRPC — feeds the endpoint's outlier gate at that moment.
/// A body dropped before a trailers-dependent outcome was known counts as cancelled: it ends the
/// request but tells the gate nothing. No allocation: the bookkeeping lives inline.
#[pin_project]
pub struct MeasuredBody<B, E> {
    #[pin]
    inner: B,
    report: Report<E>,
}

impl<B: fmt::Debug, E> fmt::Debug for MeasuredBody<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeasuredBody")
            .field("inner", &self.inner)
            .field("ended", &self.report.state.is_none())
            .finish()
    }
}

enum Pending<E> {
    Decided(Outcome),
    AwaitEos(E),
}

/// The outcome still to be decided and the ticket to report it through; reports on drop.
struct Report<E> {
    state: Option<(Pending<E>, Ticket)>,
}

impl<E: ClassifyEos<FailureClass = FailureClass>> Report<E> {
    fn end(&mut self, trailers: Option<&HeaderMap>) {
        if let Some((pending, mut ticket)) = self.state.take() {
            let outcome = match pending {
                Pending::Decided(outcome) => outcome,
                Pending::AwaitEos(eos) => Outcome::from(eos.classify_eos(trailers)),
            };
            ticket.complete(Some(&outcome));
        }
    }

    fn fail(&mut self, kind: ErrorKind) {
        if let Some((_, mut ticket)) = self.state.take() {
            ticket.complete(Some(&Outcome::Failure(FailureClass::Error(kind))));
        }
    }
}

impl<E> Drop for Report<E> {
    fn drop(&mut self) {
        if let Some((pending, mut ticket)) = self.state.take() {
            match pending {
                Pending::Decided(outcome) => ticket.complete(Some(&outcome)),
                // Dropping the ticket reports a cancellation.
                Pending::AwaitEos(_) => drop(ticket),
            }
        }
    }
}

impl<B, E> MeasuredBody<B, E> {
    pub(crate) fn decided(inner: B, outcome: Outcome, ticket: Ticket) -> Self {
        let state = Some((Pending::Decided(outcome), ticket));
        Self {
            inner,
            report: Report { state },
        }
    }

    pub(crate) fn awaiting(inner: B, eos: E, ticket: Ticket) -> Self {
        let state = Some((Pending::AwaitEos(eos), ticket));
        Self {
            inner,
            report: Report { state },
        }
    }

    /// The endpoint's body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B, E> Body for MeasuredBody<B, E>
where
    B: Body,
    B::Error: 'static,
    E: ClassifyEos<FailureClass = FailureClass>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            None => this.report.end(None),
            Some(Err(error)) => this.report.fail(ErrorKind::of(error)),
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.report.end(Some(trailers));
                } else if this.inner.is_end_stream() {
                    this.report.end(None);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
