//! [`TrackedFuture`] and [`TrackedBody`]: carry a request's [`OpenRequest`] until its response
//! body is finished or dropped, so the connection knows when it is idle.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;

use super::registry::OpenRequest;

/// The service's response future, holding the request open; the response's body takes over.
#[pin_project]
#[derive(Debug)]
pub(super) struct TrackedFuture<F> {
    #[pin]
    inner: F,
    open: Option<OpenRequest>,
}

impl<F> TrackedFuture<F> {
    pub(super) fn new(inner: F, open: OpenRequest) -> Self {
        Self {
            inner,
            open: Some(open),
        }
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        // An error response ends the request here (the guard is dropped with `this.open`).
        Poll::Ready(result.map(|res| {
            let open = this.open.take();
            res.map(|body| TrackedBody { inner: body, open })
        }))
    }
}

/// A response body that ends its request when it reaches its end or is dropped.
#[pin_project]
#[derive(Debug)]
pub(super) struct TrackedBody<B> {
    #[pin]
    inner: B,
    open: Option<OpenRequest>,
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if frame.is_none() {
            // Finished: hyper may keep the body a little longer; the request is over now.
            this.open.take();
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
