//! The retry service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use mesh_core::BoxError;
use mesh_core::classify::{FailureClass, MakeClassifier, MeshClassifier};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::Settings;
use super::template::{DeadlineFrom, Template};
use super::{RetryLayer, RetryPolicy};
use crate::body::ReplayBody;
use crate::timeout::{Deadline, TakesDeadline};

/// The service built by [`RetryLayer`]: sends a request, and again while the policy, the budget
/// and the replay buffer allow.
///
/// - Readiness is the inner service's. `call` takes the inner service that was polled ready and
///   leaves a clone in its place; the response future owns the ready one and polls it ready again
///   before each retry, so a clone that was not polled ready is never called.
/// - The request body is wrapped in a [`ReplayBody`] (the inner service sees
///   `Request<ReplayBody<B>>`). The first attempt takes the caller's head as it is; a copy of
///   its method, URI, version, headers and extensions is kept for retries (one allocation for
///   the headers; the request's [`Deadline`] aside, put back into each retry's extensions: a
///   request whose only extension is its deadline costs no extension map until a retry), and
///   each retry's head is cloned from it.
/// - The deadline comes from the request's extensions, or, through [`TakesDeadline`], from a
///   [`RequestTimeout`](crate::timeout::RequestTimeout) right above that hands it over
///   directly (then no attempt's extensions carry it, and the request needs no extension map
///   for it). Retries never start when their backoff would end past it, and a gRPC retry's
///   `grpc-timeout` is set to what it leaves.
/// - A policy allowing a single attempt keeps no template: the request goes through as it is,
///   its body a [passthrough](ReplayBody::passthrough) one (never copied).
/// - Every attempt of a request goes to the same inner service instance (the one polled ready
///   for the call), and each retry carries mesh-core's
///   [`AvoidTried`](mesh_core::attempts::AvoidTried) marker (unless
///   [`avoid_tried_endpoints`](RetryPolicy::avoid_tried_endpoints) is off): a balancer right
///   below sends it to an endpoint the earlier attempts did not go to.
/// - Each request deposits into the budget once; each retry withdraws once.
/// - `Clone` clones the inner service and shares the policy, classifier, budget and metrics.
#[derive(Debug)]
pub struct Retry<S, C = MeshClassifier> {
    inner: S,
    settings: Arc<Settings<C>>,
}

impl<S: Clone, C> Clone for Retry<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<S> Retry<S> {
    /// Wraps `inner` with `policy`, the default classifier and a default budget of its own (use
    /// [`RetryLayer`] to share a budget). Fails when the policy does not
    /// [validate](RetryPolicy::validate).
    pub fn new(inner: S, policy: RetryPolicy) -> Result<Self, mesh_core::ConfigError> {
        Ok(tower_layer::Layer::layer(&RetryLayer::new(policy)?, inner))
    }
}

impl<S, C> Retry<S, C> {
    pub(super) fn from_settings(inner: S, settings: Arc<Settings<C>>) -> Self {
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

impl<S, C, B, RB> Service<Request<B>> for Retry<S, C>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
    C: MakeClassifier<FailureClass = FailureClass>,
    C::Classifier: Clone,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.call_with(req, DeadlineFrom::Extensions)
    }
}

/// The deadline handed over by a [`RequestTimeout`](crate::timeout::RequestTimeout) right above
/// (one built with [`hand_deadline_directly`](crate::timeout::RequestTimeoutLayer::hand_deadline_directly)):
/// used as the [`Deadline`] the extensions would carry, and not put in any attempt's extensions.
impl<S, C, B, RB> TakesDeadline<Request<B>> for Retry<S, C>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
    C: MakeClassifier<FailureClass = FailureClass>,
    C::Classifier: Clone,
{
    fn call_with_deadline(&mut self, req: Request<B>, deadline: Option<Deadline>) -> Self::Future {
        self.call_with(req, DeadlineFrom::Handed(deadline))
    }
}

impl<S, C> Retry<S, C> {
    fn call_with<B, RB>(
        &mut self,
        req: Request<B>,
        deadline: DeadlineFrom,
    ) -> ResponseFuture<S, B, C>
    where
        S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
        B: Body,
        B::Error: Into<BoxError>,
        C: MakeClassifier<FailureClass = FailureClass>,
    {
        let settings = &self.settings;
        settings.budget.deposit();
        let retryable = settings.policy.is_retryable(&req);
        // The ready service goes with the request; a fresh clone waits for the next poll_ready.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        let classifier = settings.classifier.make_classifier(&req);
        if settings.policy.max_attempts <= 1 {
            // No retry can follow (the attempt limit is checked before anything else in
            // `decide`): no template, no replay copy of the body.
            let future = service.call(req.map(ReplayBody::passthrough));
            return ResponseFuture::new(
                future,
                service,
                None,
                classifier,
                Arc::clone(settings),
                retryable,
            );
        }
        let req = req.map(|body| ReplayBody::new(body, settings.policy.replay_cap));
        let kept = req
            .body()
            .replay()
            .expect("a body nobody has read is replayable");
        let template = Template::new(&req, kept, deadline, settings.policy.avoid_tried);
        // The first attempt carries the caller's head as it is (not a copy): nothing is added
        // for the balancer below until a retry.
        let future = service.call(req);
        ResponseFuture::new(
            future,
            service,
            Some(template),
            classifier,
            Arc::clone(settings),
            retryable,
        )
    }
}
