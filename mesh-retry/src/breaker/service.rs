//! [`CircuitBreaker`]: the service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use mesh_core::BoxError;
use mesh_core::classify::{FailureClass, MakeClassifier};
use tokio::time::Sleep;
use tower_service::Service;

use super::config::BreakerMode;
use super::future::ResponseFuture;
use super::handle::{BreakerHandle, BreakerPermit};

/// A service guarded by a circuit breaker; see the [module docs](super).
///
/// Capacity is reserved in `poll_ready` (a permit, or in fail-fast mode the decision to refuse) and
/// consumed by `call`. `Clone` shares the breaker but not the reservation.
pub struct CircuitBreaker<S, C> {
    inner: S,
    handle: BreakerHandle,
    classifier: C,
    reservation: Reservation,
    /// Gate mode: wakes the task when the open period ends. Allocated on first use only.
    open_timer: Option<Pin<Box<Sleep>>>,
}

#[derive(Debug)]
enum Reservation {
    None,
    Admitted(BreakerPermit),
    Refused,
}

impl<S, C> CircuitBreaker<S, C> {
    /// Guards `inner` with the breaker behind `handle`, classifying with `classifier`.
    pub fn with_handle(inner: S, handle: BreakerHandle, classifier: C) -> Self {
        Self {
            inner,
            handle,
            classifier,
            reservation: Reservation::None,
            open_timer: None,
        }
    }

    /// The breaker's handle: state, subscription, manual permits.
    pub fn handle(&self) -> &BreakerHandle {
        &self.handle
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, dropping the breaker (any reservation is reclaimed).
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Reserves a permit, or decides to refuse (fail fast), or registers for a wake-up (gate).
    fn poll_reserve(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while matches!(self.reservation, Reservation::None) {
            let gate = self.handle.mode() == BreakerMode::Gate;
            match self.handle.acquire(gate.then_some(cx.waker())) {
                Ok(permit) => self.reservation = Reservation::Admitted(permit),
                Err(_) if !gate => self.reservation = Reservation::Refused,
                // Half-open and full: the waker was registered under the breaker's lock.
                Err(refusal) => {
                    let Some(until) = refusal.until else {
                        return Poll::Pending;
                    };
                    let timer = self
                        .open_timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                    timer.as_mut().reset(until);
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
        Poll::Ready(())
    }
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        Self::with_handle(
            self.inner.clone(),
            self.handle.clone(),
            self.classifier.clone(),
        )
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("handle", &self.handle)
            .field("classifier", &self.classifier)
            .field("reservation", &self.reservation)
            .finish_non_exhaustive()
    }
}

impl<S, C, ReqBody, ResBody> Service<Request<ReqBody>> for CircuitBreaker<S, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    C: MakeClassifier<FailureClass = FailureClass>,
{
    type Response = Response<super::BreakerBody<ResBody, C::ClassifyEos>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C::Classifier>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        std::task::ready!(self.poll_reserve(cx));
        match self.reservation {
            Reservation::Refused => Poll::Ready(Ok(())),
            _ => self.inner.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match std::mem::replace(&mut self.reservation, Reservation::None) {
            Reservation::Admitted(mut permit) => {
                let classifier = self.classifier.make_classifier(&request);
                permit.start_clock();
                ResponseFuture::admitted(self.inner.call(request), permit, classifier)
            }
            Reservation::Refused => {
                self.handle.record_rejection();
                ResponseFuture::refused()
            }
            Reservation::None => panic!("poll_ready must be called first"),
        }
    }
}
