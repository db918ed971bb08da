//! The request timeout service.

use mesh_core::time::deadline_after;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use mesh_core::BoxError;
use mesh_core::classify::is_grpc;
use tokio::time::Instant;
use tower_service::Service;

use super::grpc_timeout::{self, GRPC_TIMEOUT};
use super::layer::TimeoutSettings;
use super::{Deadline, RequestTimeoutLayer, ResponseFuture};

/// The service built by [`RequestTimeoutLayer`].
///
/// Readiness is the inner service's, unchanged (the deadline starts at `call`). `Clone` clones the
/// inner service and shares the settings.
#[derive(Clone, Debug)]
pub struct RequestTimeout<S> {
    inner: S,
    settings: Arc<TimeoutSettings>,
}

impl<S> RequestTimeout<S> {
    /// Wraps `inner` with the default settings (use [`RequestTimeoutLayer`] for others).
    pub fn new(inner: S) -> Self {
        tower_layer::Layer::layer(&RequestTimeoutLayer::default(), inner)
    }

    pub(super) fn from_settings(inner: S, settings: Arc<TimeoutSettings>) -> Self {
        Self { inner, settings }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the wrapper.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for RequestTimeout<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let settings = &*self.settings;
        let now = Instant::now();
        let mut deadline = settings.timeout.map(|timeout| deadline_after(now, timeout));
        if settings.read_grpc_timeout
            && let Some(value) = req.headers().get(GRPC_TIMEOUT)
        {
            match grpc_timeout::parse(value.as_bytes()) {
                Some(timeout) => deadline = earliest(deadline, Some(deadline_after(now, timeout))),
                None => {
                    settings.malformed.add(1, &[]);
                    req.headers_mut().remove(GRPC_TIMEOUT);
                }
            }
        }
        let outer = req.extensions().get::<Deadline>().map(|d| d.instant());
        deadline = earliest(deadline, outer);
        if let Some(at) = deadline {
            if outer != Some(at) {
                req.extensions_mut().insert(Deadline::at(at));
            }
            if settings.write_grpc_timeout && is_grpc(req.headers()) {
                let left = at.saturating_duration_since(now);
                req.headers_mut()
                    .insert(GRPC_TIMEOUT, grpc_timeout::encode(left));
            }
        }
        let future = self.inner.call(req);
        ResponseFuture::new(future, deadline, self.settings.expired.clone())
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
