//! The request timeout service.

use mesh_core::time::deadline_after;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request};
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
///
/// `H` says how the service below learns each request's deadline: [`InExtensions`] (the default)
/// puts it in the request's extensions as a [`Deadline`], for any layer below to read;
/// [`Direct`] hands it to the service right below through [`TakesDeadline`] and leaves the
/// extensions alone.
#[derive(Clone, Debug)]
pub struct RequestTimeout<S, H = InExtensions> {
    inner: S,
    settings: Arc<TimeoutSettings>,
    handoff: PhantomData<H>,
}

/// [`RequestTimeout`]'s default hand-off: each request's deadline goes into its extensions as a
/// [`Deadline`] (unless an outer layer's deadline there is already the earlier one).
///
/// Any layer below can read it. A request without extensions pays for the map: three allocations
/// (the map's box, its table, the value's box).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InExtensions;

/// A [`RequestTimeout`] hand-off for a service right below that implements [`TakesDeadline`]
/// (mesh-retry's [`Retry`](crate::retry::Retry) does): the deadline is handed over with the
/// request, and the request's extensions are left as they came.
///
/// It saves the extension map a request without one would otherwise get, at the price of layers
/// further down not seeing the deadline (an outer [`Deadline`] already in the extensions stays
/// there).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Direct;

/// A service that can be handed a request's deadline alongside the request, rather than in its
/// extensions (see [`Direct`]).
///
/// `deadline` is the earliest of the timeout layer's own, the caller's `grpc-timeout` and any
/// outer [`Deadline`] in the request's extensions: the implementation treats it as the request's
/// deadline and need not look at the extensions.
pub trait TakesDeadline<Request>: Service<Request> {
    /// [`call`](Service::call), with the request's deadline.
    fn call_with_deadline(&mut self, req: Request, deadline: Option<Deadline>) -> Self::Future;
}

impl<S> RequestTimeout<S> {
    /// Wraps `inner` with the default settings (use [`RequestTimeoutLayer`] for others).
    pub fn new(inner: S) -> Self {
        tower_layer::Layer::layer(&RequestTimeoutLayer::default(), inner)
    }
}

impl<S, H> RequestTimeout<S, H> {
    pub(super) fn from_settings(inner: S, settings: Arc<TimeoutSettings>) -> Self {
        Self {
            inner,
            settings,
            handoff: PhantomData,
        }
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

/// A request's deadline as [`prepare`] worked it out.
struct Deadlines {
    /// The earliest of all, the one enforced.
    deadline: Option<Instant>,
    /// The one an outer layer put in the extensions, if any.
    outer: Option<Instant>,
}

/// Works out the deadline of `req` from the settings, its `grpc-timeout` (removed when malformed)
/// and an outer [`Deadline`], and writes `grpc-timeout` on a gRPC request when asked to.
fn prepare<B>(settings: &TimeoutSettings, req: &mut Request<B>) -> Deadlines {
    let now = mesh_core::time::now();
    let mut deadline = settings.timeout.map(|timeout| deadline_after(now, timeout));
    // Every gRPC call is a `POST`: a request of another method costs no header lookup here.
    let post = req.method() == Method::POST;
    if post
        && settings.read_grpc_timeout
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
    if let Some(at) = deadline
        && post
        && settings.write_grpc_timeout
        && is_grpc(req.headers())
    {
        let left = at.saturating_duration_since(now);
        req.headers_mut()
            .insert(GRPC_TIMEOUT, grpc_timeout::encode(left));
    }
    Deadlines { deadline, outer }
}

impl<S, B> Service<Request<B>> for RequestTimeout<S, InExtensions>
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
        let Deadlines { deadline, outer } = prepare(&self.settings, &mut req);
        if let Some(at) = deadline
            && outer != Some(at)
        {
            req.extensions_mut().insert(Deadline::at(at));
        }
        let future = self.inner.call(req);
        ResponseFuture::new(future, deadline, self.settings.expired.clone())
    }
}

impl<S, B> Service<Request<B>> for RequestTimeout<S, Direct>
where
    S: TakesDeadline<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Deadlines { deadline, .. } = prepare(&self.settings, &mut req);
        let future = self
            .inner
            .call_with_deadline(req, deadline.map(Deadline::at));
        ResponseFuture::new(future, deadline, self.settings.expired.clone())
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
