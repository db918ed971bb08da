//! [`ConcurrencyLimit`]: the service.

use std::fmt;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use mesh_core::BoxError;
use tower_service::Service;

use super::body::LimitBody;
use super::config::OverLimit;
use super::future::ResponseFuture;
use super::limiter::{LimitHandle, LimitPermit};

/// A service with a limit on requests in flight; see the [module docs](super).
///
/// A permit is reserved in `poll_ready` (or, failing fast, the decision to reject) and consumed by
/// `call`; it is held until the response body ends. `Clone` shares the limit but not the
/// reservation.
pub struct ConcurrencyLimit<S> {
    inner: S,
    handle: LimitHandle,
    over_limit: OverLimit,
    reservation: Reservation,
}

#[derive(Debug)]
enum Reservation {
    None,
    Permit(LimitPermit),
    Rejected,
}

impl<S> ConcurrencyLimit<S> {
    pub(super) fn with_handle(inner: S, handle: LimitHandle, over_limit: OverLimit) -> Self {
        Self {
            inner,
            handle,
            over_limit,
            reservation: Reservation::None,
        }
    }

    /// The shared limit: current value and requests in flight.
    pub fn handle(&self) -> &LimitHandle {
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

    /// The inner service; a reserved permit is released.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for ConcurrencyLimit<S> {
    fn clone(&self) -> Self {
        Self::with_handle(self.inner.clone(), self.handle.clone(), self.over_limit)
    }
}

impl<S: fmt::Debug> fmt::Debug for ConcurrencyLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimit")
            .field("inner", &self.inner)
            .field("handle", &self.handle)
            .field("over_limit", &self.over_limit)
            .field("reservation", &self.reservation)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ConcurrencyLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body,
{
    type Response = Response<LimitBody<ResBody>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if let Reservation::None = self.reservation {
            let wait = self.over_limit == OverLimit::Wait;
            self.reservation = match self.handle.try_acquire(wait.then_some(cx.waker())) {
                Some(permit) => Reservation::Permit(permit),
                None if wait => return Poll::Pending,
                None => Reservation::Rejected,
            };
        }
        match self.reservation {
            Reservation::Rejected => Poll::Ready(Ok(())),
            _ => self.inner.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match std::mem::replace(&mut self.reservation, Reservation::None) {
            Reservation::Permit(mut permit) => {
                permit.start_clock();
                ResponseFuture::called(self.inner.call(request), permit)
            }
            Reservation::Rejected => {
                self.handle.record_rejection();
                ResponseFuture::rejected()
            }
            Reservation::None => panic!("poll_ready must be called first"),
        }
    }
}
