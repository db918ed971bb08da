//! [`LimitBody`]: holds a request's permit until its response body ends.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;

use super::limiter::LimitPermit;

/// The response body of a [`ConcurrencyLimit`](super::ConcurrencyLimit): the inner body, holding
/// the request's permit until the end of the stream (a latency sample for an adaptive limit), an
/// error, or being dropped (released without a sample). No allocation.
#[pin_project]
pub struct LimitBody<B> {
    #[pin]
    inner: B,
    permit: Option<LimitPermit>,
}

impl<B: Body> LimitBody<B> {
    pub(super) fn new(inner: B, permit: LimitPermit) -> Self {
        if inner.is_end_stream() {
            // Nothing to wait for (an empty body may never be polled).
            permit.finish();
            return Self {
                inner,
                permit: None,
            };
        }
        Self {
            inner,
            permit: Some(permit),
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for LimitBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitBody")
            .field("inner", &self.inner)
            .field("holds_permit", &self.permit.is_some())
            .finish()
    }
}

impl<B: Body> Body for LimitBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let ended = match &frame {
            None => true,
            Some(Ok(_)) => this.inner.is_end_stream(),
            Some(Err(_)) => {
                // A broken body: released without a latency sample.
                this.permit.take();
                false
            }
        };
        if ended && let Some(permit) = this.permit.take() {
            permit.finish();
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
