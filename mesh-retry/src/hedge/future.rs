//! The hedge response future: first attempt, timer, extra attempt, first success wins.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use mesh_core::BoxError;
use mesh_core::classify::{
    ClassifiedResponse, ClassifyResponse, MakeClassifier, MeshResponseClassifier,
};
use mesh_core::time::PooledSleep;
use pin_project::pin_project;
use tokio::time::Instant;
use tower_service::Service;

use super::layer::HedgeSettings;
use crate::body::ReplayBody;

/// The future of a [`Hedge`](super::Hedge) call.
///
/// Polls the first attempt; when the hedge delay passes first, polls a clone of the inner service
/// ready, takes one token from the budget and sends the extra attempt. The first attempt to
/// succeed (by the head: a status the classifier does not call a failure) is returned and the
/// other is dropped, which cancels it. A failure is held while the other attempt is still running,
/// and returned if that one fails too (then its failure is returned). A first attempt that fails
/// before the hedge is sent is returned at once: resending failed requests is the retry layer's
/// job. Dropping the future cancels both attempts.
#[pin_project]
pub struct ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    #[pin]
    primary: Option<S::Future>,
    #[pin]
    hedge: Option<S::Future>,
    timer: Option<PooledSleep>,
    phase: Phase,
    service: Option<S>,
    template: Option<Request<ReplayBody<B>>>,
    classifier: Option<MeshResponseClassifier>,
    failed: Option<Result<S::Response, BoxError>>,
    settings: Arc<HedgeSettings>,
    start: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the hedge delay.
    Waiting,
    /// The delay passed; waiting for the inner service to be ready.
    Readying,
    /// The hedge was sent, or will never be.
    Done,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    pub(super) fn single(future: S::Future, settings: Arc<HedgeSettings>, start: Instant) -> Self {
        Self {
            primary: Some(future),
            hedge: None,
            timer: None,
            phase: Phase::Done,
            service: None,
            template: None,
            classifier: None,
            failed: None,
            settings,
            start,
        }
    }

    pub(super) fn hedged(
        future: S::Future,
        service: S,
        template: Request<ReplayBody<B>>,
        settings: Arc<HedgeSettings>,
        start: Instant,
        hedge_at: Instant,
    ) -> Self {
        let classifier = settings.classifier.make_classifier(&template);
        Self {
            primary: Some(future),
            hedge: None,
            timer: Some(PooledSleep::until(hedge_at)),
            phase: Phase::Waiting,
            service: Some(service),
            template: Some(template),
            classifier: Some(classifier),
            failed: None,
            settings,
            start,
        }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            // The attempts, first attempt first.
            for is_hedge in [false, true] {
                let mut slot = if is_hedge {
                    this.hedge.as_mut()
                } else {
                    this.primary.as_mut()
                };
                let Some(future) = slot.as_mut().as_pin_mut() else {
                    continue;
                };
                let Poll::Ready(result) = future.poll(cx) else {
                    continue;
                };
                slot.set(None);
                let result = result.map_err(Into::into);
                let other_running = this.primary.is_some() || this.hedge.is_some();
                if succeeded(*this.classifier, &result) {
                    this.settings
                        .histogram
                        .record(mesh_core::time::now().saturating_duration_since(*this.start));
                    if is_hedge {
                        this.settings.won.add(1, &[]);
                    }
                    return Poll::Ready(result);
                }
                if !other_running {
                    return Poll::Ready(result);
                }
                *this.failed = Some(result);
            }
            if this.primary.is_none() && this.hedge.is_none() {
                // Only reachable if a failure was held and nothing else is running.
                return Poll::Ready(this.failed.take().expect("an attempt finished"));
            }
            if this.primary.is_none() && *this.phase != Phase::Done {
                // The first attempt failed before the hedge went out: no hedge.
                *this.phase = Phase::Done;
            }
            match *this.phase {
                Phase::Waiting => {
                    let fired = this
                        .timer
                        .as_mut()
                        .is_some_and(|timer| Pin::new(timer).poll(cx).is_ready());
                    if !fired {
                        return Poll::Pending;
                    }
                    *this.timer = None;
                    let replayable = this
                        .template
                        .as_ref()
                        .is_some_and(|t| t.body().status().is_replayable());
                    *this.phase = if replayable {
                        Phase::Readying
                    } else {
                        Phase::Done
                    };
                }
                Phase::Readying => {
                    let Some(service) = this.service.as_mut() else {
                        *this.phase = Phase::Done;
                        continue;
                    };
                    match service.poll_ready(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(_)) => {
                            // The hedge is an optimisation: a failing inner service only
                            // cancels it; the first attempt goes on.
                            *this.service = None;
                            *this.phase = Phase::Done;
                        }
                        Poll::Ready(Ok(())) => {
                            *this.phase = Phase::Done;
                            let template = this.template.as_ref().expect("kept until sent");
                            let body = template.body().replay();
                            let granted = body.is_some() && this.settings.budget.withdraw();
                            let mut service = this.service.take().expect("checked above");
                            match body {
                                Some(body) if granted => {
                                    let request =
                                        crate::retry::attempt_request(template, body, false);
                                    this.hedge.set(Some(service.call(request)));
                                    this.settings.sent.add(1, &[]);
                                }
                                Some(_) => this.settings.budget_exhausted.add(1, &[]),
                                None => {}
                            }
                        }
                    }
                }
                Phase::Done => return Poll::Pending,
            }
        }
    }
}

/// Whether an attempt's result ends the race: a response whose head the classifier does not call
/// a failure (a status only known from the trailers counts as success: the body must stream).
fn succeeded<RB>(
    classifier: Option<MeshResponseClassifier>,
    result: &Result<Response<RB>, BoxError>,
) -> bool {
    match (result, classifier) {
        (Err(_), _) => false,
        (Ok(_), None) => true,
        (Ok(response), Some(classifier)) => !matches!(
            classifier.classify_response(response),
            ClassifiedResponse::Ready(Err(_))
        ),
    }
}

impl<S, B> std::fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("phase", &self.phase)
            .field("primary", &self.primary.is_some())
            .field("hedge", &self.hedge.is_some())
            .finish_non_exhaustive()
    }
}
