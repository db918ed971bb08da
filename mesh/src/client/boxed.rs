//! [`BoxFuture`]: the retry layer's future, boxed where it is made.
//!
//! The retry layer's future is the largest of the stack (about 750 bytes: the balancer's future
//! below it, the balancer instance the retries go to, the request template). Every layer above
//! it (the timeout, the trace, the body mapping) nests it into its own future by value, and the
//! call's state holds the result: each of those is a copy of the whole future, into memory last
//! touched a request earlier, so a data cache miss per 64 bytes. In mesh-sidecar's proxied
//! request, callgrind found these copies to be the largest it made.
//!
//! Boxed right where the retry layer returns it, the future is copied once (into the box) and
//! the layers above nest a pointer. The client keeps one allocation per call as before: the box
//! moves from around the call's state (see [`ResponseFuture`](super::ResponseFuture)) to around
//! this future.

use std::pin::Pin;
use std::task::{Context, Poll};

use mesh_retry::timeout::{Deadline, TakesDeadline};
use tower::Service;

/// A service whose future is its inner service's, boxed (and pinned) as soon as it is made.
///
/// Readiness and errors are the inner service's; the [`TakesDeadline`] hand-off passes through.
#[derive(Clone, Debug)]
pub(crate) struct BoxFuture<S> {
    inner: S,
}

impl<S> BoxFuture<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, Req> Service<Req> for BoxFuture<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        Box::pin(self.inner.call(req))
    }
}

impl<S, Req> TakesDeadline<Req> for BoxFuture<S>
where
    S: TakesDeadline<Req>,
{
    fn call_with_deadline(&mut self, req: Req, deadline: Option<Deadline>) -> Self::Future {
        Box::pin(self.inner.call_with_deadline(req, deadline))
    }
}
