//! The hedge service.

use mesh_core::time::deadline_after;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use mesh_core::BoxError;
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{HedgeDelay, HedgeSettings};
use crate::body::ReplayBody;
use crate::retry::{Retryable, is_idempotent};

/// The service built by [`HedgeLayer`](super::HedgeLayer).
///
/// Readiness is the inner service's. `call` takes the inner service that was polled ready for the
/// first attempt and, for a request that may be hedged, a fresh clone that the response future
/// polls ready before sending the extra attempt (so the balancer below picks again, usually
/// another endpoint). Requests that are neither idempotent nor marked [`Retryable`] pass through
/// with a non-replayable body. `Clone` clones the inner service and shares the settings,
/// histogram and budget.
#[derive(Debug)]
pub struct Hedge<S> {
    inner: S,
    settings: Arc<HedgeSettings>,
}

impl<S: Clone> Clone for Hedge<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<S> Hedge<S> {
    pub(super) fn from_settings(inner: S, settings: Arc<HedgeSettings>) -> Self {
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

impl<S, B, RB> Service<Request<B>> for Hedge<S>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let settings = &self.settings;
        if settings.deposit {
            settings.budget.deposit();
        }
        let hedgeable =
            is_idempotent(req.method()) || req.extensions().get::<Retryable>().is_some();
        let delay = if hedgeable {
            match settings.delay {
                HedgeDelay::Fixed(delay) => Some(delay),
                HedgeDelay::Percentile {
                    percentile,
                    min_samples,
                } => settings.histogram.percentile(percentile, min_samples),
            }
        } else {
            None
        };
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let start = mesh_core::time::now();
        let Some(delay) = delay else {
            let req = req.map(ReplayBody::passthrough);
            return ResponseFuture::single(ready.call(req), Arc::clone(settings), start);
        };
        let (parts, body) = req.into_parts();
        let template = Request::from_parts(parts, ReplayBody::new(body, settings.replay_cap));
        let body = template
            .body()
            .replay()
            .expect("a body nobody has read is replayable");
        let first = crate::retry::attempt_request(&template, body, false);
        let future = ready.call(first);
        ResponseFuture::hedged(
            future,
            self.inner.clone(),
            template,
            Arc::clone(settings),
            start,
            deadline_after(start, delay),
        )
    }
}
