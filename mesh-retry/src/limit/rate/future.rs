//! [`ResponseFuture`] of the rate limit.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use mesh_core::BoxError;
use mesh_core::error::RateLimited;
use pin_project::pin_project;

/// The response future of [`RateLimit`](super::RateLimit): the inner future, or an immediate
/// [`RateLimited`] error.
#[pin_project(project = ResponseFutureProj)]
pub enum ResponseFuture<F> {
    /// The request was let through.
    Called {
        /// The inner service's future.
        #[pin]
        future: F,
    },
    /// The request was refused; the error is taken on the first poll.
    Limited {
        /// The refusal.
        error: Option<RateLimited>,
    },
}

impl<F> ResponseFuture<F> {
    pub(super) fn called(future: F) -> Self {
        Self::Called { future }
    }

    pub(super) fn limited(error: RateLimited) -> Self {
        Self::Limited { error: Some(error) }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Called { .. } => f.write_str("ResponseFuture::Called"),
            Self::Limited { error } => f
                .debug_struct("ResponseFuture::Limited")
                .field("error", error)
                .finish(),
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ResponseFutureProj::Called { future } => future.poll(cx).map_err(Into::into),
            ResponseFutureProj::Limited { error } => Poll::Ready(Err(error
                .take()
                .expect("ResponseFuture polled after completion")
                .into())),
        }
    }
}
