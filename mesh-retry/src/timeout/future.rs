//! The request timeout future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use mesh_core::BoxError;
use mesh_core::error::Timeout;
use mesh_core::time::PooledSleep;
use opentelemetry::metrics::Counter;
use pin_project::pin_project;
use tokio::time::Instant;

/// The future of a [`RequestTimeout`](super::RequestTimeout) call: the inner future, raced
/// against the deadline.
///
/// The inner future is polled first, so a response that is ready at the deadline wins. When the
/// deadline passes the inner future is dropped (cancelling the request) and the error is
/// [`Timeout`]. The timer is a [`PooledSleep`]: a request usually reuses the timer of one that
/// ended (no allocation, and no filing into tokio's timer wheel).
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    sleep: Option<PooledSleep>,
    expired: Counter<u64>,
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, deadline: Option<Instant>, expired: Counter<u64>) -> Self {
        Self {
            inner,
            sleep: deadline.map(PooledSleep::until),
            expired,
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
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        let expired = this
            .sleep
            .as_mut()
            .is_some_and(|sleep| Pin::new(sleep).poll(cx).is_ready());
        if expired {
            this.expired.add(1, &[]);
            return Poll::Ready(Err(Timeout::new().into()));
        }
        Poll::Pending
    }
}
