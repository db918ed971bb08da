//! [`ResponseFuture`] of [`Authz`](super::Authz).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use mesh_core::BoxError;
use pin_project::pin_project;

/// The future of [`Authz`](super::Authz): the inner service's, or a denial ready at once.
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F> {
    #[pin]
    state: State<F>,
}

#[pin_project(project = StateProj)]
#[derive(Debug)]
enum State<F> {
    Called {
        #[pin]
        future: F,
    },
    Denied {
        error: Option<BoxError>,
    },
}

impl<F> ResponseFuture<F> {
    pub(crate) fn called(future: F) -> Self {
        Self {
            state: State::Called { future },
        }
    }

    pub(crate) fn denied(error: BoxError) -> Self {
        Self {
            state: State::Denied { error: Some(error) },
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx).map_err(Into::into),
            StateProj::Denied { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
        }
    }
}
