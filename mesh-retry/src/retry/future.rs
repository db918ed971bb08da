//! The retry response future: attempt, decide, back off, attempt again.

use mesh_core::time::{PooledSleep, deadline_after};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use mesh_core::BoxError;
use mesh_core::attempts::AvoidTried;
use mesh_core::classify::{ClassifiedResponse, ClassifyResponse, FailureClass, MakeClassifier};
use mesh_core::error::Timeout;
use pin_project::pin_project;
use tower_service::Service;

use super::layer::Settings;
use super::limit::RetryPermit;
use super::template::Template;
use crate::body::ReplayBody;

/// The future of a [`Retry`](super::Retry) call.
///
/// It owns the inner service (polled ready before each retry; every attempt goes to this one
/// instance), the request template and one timer, reused for the per-try timeout and the
/// backoff. It allocates nothing itself (the timer is a [`PooledSleep`], usually one a finished
/// request gave back; a retry only allocates the next request's head).
///
/// Dropping it cancels the attempt in flight; no retry outlives it. If the inner service fails
/// `poll_ready` before a retry, that error is returned (the service cannot take the retry).
#[pin_project]
pub struct ResponseFuture<S, B, C>
where
    S: Service<Request<ReplayBody<B>>>,
    C: MakeClassifier,
{
    #[pin]
    state: State<S::Future, NextAttempt<B>>,
    /// The per-try timeout while calling, the backoff while waiting. It exists only with a
    /// per-try timeout or once a retry waits (a [`PooledSleep`] is small: its `Sleep` is boxed).
    timer: Option<PooledSleep>,
    service: S,
    /// `None` when the policy allows a single attempt.
    template: Option<Template<B>>,
    classifier: C::Classifier,
    settings: Arc<Settings<C>>,
    attempts: u32,
    retryable: bool,
    /// The slot of the retry in progress under the layer's [`RetryLimit`](super::RetryLimit),
    /// from its decision until its attempt has an outcome.
    permit: Option<RetryPermit>,
}

/// `R` is the next attempt, decided on (kept in the state so the future is no larger than it
/// needs to be).
#[pin_project(project = StateProj)]
enum State<F, R> {
    Calling(#[pin] F),
    Backoff(Option<R>),
    Ready(Option<R>),
}

/// A retry that was decided: its body (a replay taken when deciding) and the time its deadline
/// leaves it when it starts, if it has one (its `grpc-timeout`, on a gRPC request that carried
/// one). Its request is made from the template when it is sent, so that the future does not hold
/// a second request head while the first attempt is in flight.
struct NextAttempt<B> {
    body: ReplayBody<B>,
    time_left: Option<Duration>,
}

impl<S, B, C> ResponseFuture<S, B, C>
where
    S: Service<Request<ReplayBody<B>>>,
    C: MakeClassifier,
{
    pub(super) fn new(
        future: S::Future,
        service: S,
        template: Option<Template<B>>,
        classifier: C::Classifier,
        settings: Arc<Settings<C>>,
        retryable: bool,
    ) -> Self {
        let timer = settings
            .policy
            .per_try_timeout
            .map(|timeout| PooledSleep::until(deadline_after(mesh_core::time::now(), timeout)));
        Self {
            state: State::Calling(future),
            timer,
            service,
            template,
            classifier,
            settings,
            attempts: 1,
            retryable,
            permit: None,
        }
    }
}

impl<S, B, C, RB> Future for ResponseFuture<S, B, C>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
    C: MakeClassifier<FailureClass = FailureClass>,
    C::Classifier: Clone,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling(future) => {
                    let result = match future.poll(cx) {
                        Poll::Ready(result) => result.map_err(Into::into),
                        Poll::Pending => {
                            let timed_out = this
                                .timer
                                .as_mut()
                                .is_some_and(|timer| Pin::new(timer).poll(cx).is_ready());
                            if !timed_out {
                                return Poll::Pending;
                            }
                            Err(Timeout::new().into())
                        }
                    };
                    // This attempt has its outcome: a retry it was stops counting.
                    *this.permit = None;
                    let decision = decide(
                        this.settings,
                        this.classifier.clone(),
                        &result,
                        *this.attempts,
                        *this.retryable,
                        this.template.as_ref(),
                    );
                    let Some((request, delay, permit)) = decision else {
                        return Poll::Ready(result);
                    };
                    *this.permit = permit;
                    if delay.is_zero() {
                        this.state.set(State::Ready(Some(request)));
                    } else {
                        set_timer(this.timer, delay);
                        this.state.set(State::Backoff(Some(request)));
                    }
                }
                StateProj::Backoff(request) => {
                    if let Some(timer) = this.timer.as_mut() {
                        ready!(Pin::new(timer).poll(cx));
                    }
                    let request = request.take();
                    this.state.set(State::Ready(request));
                }
                StateProj::Ready(request) => {
                    if let Err(error) = ready!(this.service.poll_ready(cx)) {
                        return Poll::Ready(Err(error.into()));
                    }
                    let next = request.take().expect("a retry was decided");
                    let template = this.template.as_ref().expect("a retry has a template");
                    let request = template.retry_request(next.body, next.time_left);
                    *this.attempts += 1;
                    let future = this.service.call(request);
                    match this.settings.policy.per_try_timeout {
                        Some(timeout) => set_timer(this.timer, timeout),
                        None => *this.timer = None,
                    }
                    this.state.set(State::Calling(future));
                }
            }
        }
    }
}

fn set_timer(timer: &mut Option<PooledSleep>, after: Duration) {
    PooledSleep::arm(timer, deadline_after(mesh_core::time::now(), after));
}

/// Decides whether to retry after an attempt: `Some((next attempt, delay, slot under the retry
/// limit))` or `None` to return the result as it is. Budget, limit and metrics are updated here.
fn decide<B, C, RB>(
    settings: &Settings<C>,
    classifier: C::Classifier,
    result: &Result<Response<RB>, BoxError>,
    attempts: u32,
    retryable: bool,
    template: Option<&Template<B>>,
) -> Option<(NextAttempt<B>, Duration, Option<RetryPermit>)>
where
    B: Body,
    B::Error: Into<BoxError>,
    C: MakeClassifier<FailureClass = FailureClass>,
{
    let class = match result {
        Ok(response) => match classifier.classify_response(response) {
            ClassifiedResponse::Ready(Ok(())) => {
                settings.budget.record(true);
                return None;
            }
            ClassifiedResponse::Ready(Err(class)) => class,
            // The status is in the trailers: the body goes to the caller, never held back.
            ClassifiedResponse::RequiresEos(_) => return None,
        },
        Err(error) => classifier.classify_error(error),
    };
    settings.budget.record(false);
    let policy = &settings.policy;
    if attempts >= policy.max_attempts {
        return None;
    }
    // Always there when more than one attempt is allowed.
    let template = template?;
    let (reason, server_delay) = policy.reason(&class, retryable)?;
    let sequence = settings.sequence.fetch_add(1, Ordering::Relaxed);
    let mut rng = fastrand::Rng::with_seed(
        settings
            .seed
            .wrapping_add(sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
    );
    let delay = policy
        .backoff
        .delay(attempts, &mut rng)
        .max(server_delay.unwrap_or_default());
    let deadline = template.deadline;
    if deadline.is_some_and(|deadline| deadline.remaining() <= delay) {
        return None;
    }
    let Some(body) = template.body.replay() else {
        settings
            .metrics
            .not_replayable(template.body.status().as_str());
        return None;
    };
    let permit = match &settings.limit {
        None => None,
        Some(limit) => match limit.try_acquire() {
            Some(permit) => Some(permit),
            None => {
                settings.metrics.budget_exhausted(reason);
                return None;
            }
        },
    };
    if !settings.budget.withdraw() {
        settings.metrics.budget_exhausted(reason);
        return None;
    }
    settings.metrics.retry(reason);
    let time_left = deadline.map(|deadline| deadline.remaining().saturating_sub(delay));
    Some((NextAttempt { body, time_left }, delay, permit))
}

/// One attempt's request: the template's head, cloned, with `body`, marked [`AvoidTried`] when
/// `avoid_tried` (a zero-sized value: no allocation when the extensions map exists already).
pub(crate) fn attempt_request<B>(
    template: &Request<ReplayBody<B>>,
    body: ReplayBody<B>,
    avoid_tried: bool,
) -> Request<ReplayBody<B>> {
    let mut request = Request::new(body);
    *request.method_mut() = template.method().clone();
    *request.uri_mut() = template.uri().clone();
    *request.version_mut() = template.version();
    *request.headers_mut() = template.headers().clone();
    *request.extensions_mut() = template.extensions().clone();
    if avoid_tried {
        request.extensions_mut().insert(AvoidTried);
    }
    request
}

impl<S, B, C> std::fmt::Debug for ResponseFuture<S, B, C>
where
    S: Service<Request<ReplayBody<B>>>,
    C: MakeClassifier,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Calling(_) => "calling",
            State::Backoff(_) => "backoff",
            State::Ready(_) => "ready",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}
