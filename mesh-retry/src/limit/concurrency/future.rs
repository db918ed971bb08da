//! [`ResponseFuture`] of the concurrency limit.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use http_body::Body;
use mesh_core::BoxError;
use mesh_core::error::Overloaded;
use pin_project::pin_project;

use super::body::LimitBody;
use super::limiter::LimitPermit;

/// The response future of [`ConcurrencyLimit`](super::ConcurrencyLimit): fails at once with
/// [`Overloaded`] when the request was over the limit, otherwise hands the permit to the response
/// body. Dropping it releases the permit.
#[pin_project]
pub struct ResponseFuture<F> {
    #[pin]
    state: State<F>,
}

#[pin_project(project = StateProj)]
enum State<F> {
    Called {
        #[pin]
        future: F,
        permit: Option<LimitPermit>,
    },
    Rejected,
}

impl<F> ResponseFuture<F> {
    pub(super) fn called(future: F, permit: LimitPermit) -> Self {
        Self {
            state: State::Called {
                future,
                permit: Some(permit),
            },
        }
    }

    pub(super) fn rejected() -> Self {
        Self {
            state: State::Rejected,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Called { .. } => "called",
            State::Rejected => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Body,
{
    type Output = Result<Response<LimitBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Rejected => Poll::Ready(Err(Overloaded::new().into())),
            StateProj::Called { future, permit } => {
                let result = ready!(future.poll(cx));
                let permit = permit
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(match result {
                    Ok(response) => Ok(response.map(|body| LimitBody::new(body, permit))),
                    // Released (dropped) without a latency sample.
                    Err(error) => Err(error.into()),
                })
            }
        }
    }
}
