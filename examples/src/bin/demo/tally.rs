//! [`Tally`]: the innermost wrapper of each endpoint's stack, counting every attempt the balancer
//! sends there (retries included) for the live table.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use mesh_core::BoxError;
use mesh_examples::stats::{EndpointStats, Outcome};
use tokio::time::Instant;
use tower::Service;

/// Records the outcome and the time to the response head of every call into `stats`.
///
/// Readiness is the inner service's, so the breaker's gate still decides whether the balancer may
/// pick this endpoint. A boxed future keeps it short: this is demo bookkeeping, not the hot path of
/// a library layer.
#[derive(Clone, Debug)]
pub(crate) struct Tally<S> {
    inner: S,
    stats: Arc<EndpointStats>,
}

impl<S> Tally<S> {
    pub(crate) fn new(inner: S, stats: Arc<EndpointStats>) -> Self {
        Self { inner, stats }
    }
}

impl<S, B, RB> Service<Request<B>> for Tally<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let started = Instant::now();
        let stats = self.stats.clone();
        let future = self.inner.call(req);
        Box::pin(async move {
            let result = future.await;
            let outcome = match &result {
                Ok(res) => outcome_of(res.status(), res.headers()),
                Err(_) => Outcome::Error,
            };
            stats.record(outcome, started.elapsed());
            result
        })
    }
}

/// The live table's verdict on a response head: 5xx are failures, except 503 with `Retry-After`
/// (the server sheds load: overloaded), as mesh-core's classifier sees them.
pub(crate) fn outcome_of(status: StatusCode, headers: &http::HeaderMap) -> Outcome {
    if status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::SERVICE_UNAVAILABLE
            && headers.contains_key(http::header::RETRY_AFTER))
    {
        Outcome::Overloaded
    } else if status.is_server_error() {
        Outcome::Failure
    } else {
        Outcome::Success
    }
}
