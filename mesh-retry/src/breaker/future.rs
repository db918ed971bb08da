//! [`ResponseFuture`] of the circuit breaker.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use mesh_core::BoxError;
use mesh_core::classify::{ClassifyResponse, FailureClass, observe_response};
use mesh_core::error::CircuitOpen;
use pin_project::pin_project;

use super::BreakerBody;
use super::handle::BreakerPermit;

/// The response future of [`CircuitBreaker`](super::CircuitBreaker): fails at once with
/// [`CircuitOpen`] when the call was refused, otherwise waits for the inner future and wraps the
/// response body so that the outcome is recorded when the body ends.
///
/// Dropping it before the response arrives reclaims the permit (nothing is counted).
#[pin_project]
pub struct ResponseFuture<F, K> {
    #[pin]
    state: State<F, K>,
}

#[pin_project(project = StateProj)]
enum State<F, K> {
    Called {
        #[pin]
        future: F,
        /// `Some` until the future completes.
        permit: Option<(BreakerPermit, K)>,
    },
    Refused,
}

impl<F, K> ResponseFuture<F, K> {
    pub(super) fn admitted(future: F, permit: BreakerPermit, classifier: K) -> Self {
        Self {
            state: State::Called {
                future,
                permit: Some((permit, classifier)),
            },
        }
    }

    pub(super) fn refused() -> Self {
        Self {
            state: State::Refused,
        }
    }
}

impl<F, K> fmt::Debug for ResponseFuture<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Called { .. } => "called",
            State::Refused => "refused",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, K, B, E> Future for ResponseFuture<F, K>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    K: ClassifyResponse<FailureClass = FailureClass>,
{
    type Output = Result<Response<BreakerBody<B, K::ClassifyEos>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Refused => Poll::Ready(Err(CircuitOpen::new().into())),
            StateProj::Called { future, permit } => {
                let result = ready!(future.poll(cx));
                let (permit, classifier) = permit
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(match result {
                    Ok(response) => Ok(observe_response(classifier, response, permit)),
                    Err(error) => {
                        let error = error.into();
                        permit.record_error(&error);
                        Err(error)
                    }
                })
            }
        }
    }
}
