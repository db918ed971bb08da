//! [`NormalizeTargetLayer`]: [`normalize_target`] as a tower layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use pin_project::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{TargetRules, normalize_target};
use crate::error::BoxError;

/// Normalises every request's target before the inner service sees it, and refuses the ambiguous
/// ones with [`BadRequest`](crate::error::BadRequest) (`400`) or, for `CONNECT`,
/// [`MethodNotAllowed`](crate::error::MethodNotAllowed) (`405`). Put mesh-core's
/// `ErrorResponseLayer` outside it to answer them. See [`normalize_target`] for the rules.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response, StatusCode};
/// use mesh_core::error::ErrorResponseLayer;
/// use mesh_core::proxy::{NormalizeTargetLayer, TargetRules};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let echo_path = ServiceBuilder::new()
///     .layer(ErrorResponseLayer::new())
///     .layer(NormalizeTargetLayer::new(TargetRules::default()))
///     .service_fn(|req: Request<()>| async move {
///         Ok::<_, Infallible>(Response::new(req.uri().path().to_owned()))
///     });
/// let req = Request::get("//a/./b/../c").header("host", "x").body(()).unwrap();
/// let res = echo_path.clone().oneshot(req).await.unwrap();
/// # use http_body_util::BodyExt;
/// assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "/a/c");
///
/// let req = Request::get("/a%2Fb").header("host", "x").body(()).unwrap();
/// assert_eq!(echo_path.oneshot(req).await.unwrap().status(), StatusCode::BAD_REQUEST);
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct NormalizeTargetLayer {
    rules: Arc<TargetRules>,
}

impl NormalizeTargetLayer {
    /// A layer applying `rules`.
    pub fn new(rules: TargetRules) -> Self {
        Self {
            rules: Arc::new(rules),
        }
    }
}

impl<S> Layer<S> for NormalizeTargetLayer {
    type Service = NormalizeTarget<S>;

    fn layer(&self, inner: S) -> NormalizeTarget<S> {
        NormalizeTarget {
            inner,
            rules: self.rules.clone(),
        }
    }
}

/// The service of [`NormalizeTargetLayer`]. Readiness is the inner service's; a refused request
/// never reaches it.
#[derive(Clone, Debug)]
pub struct NormalizeTarget<S> {
    inner: S,
    rules: Arc<TargetRules>,
}

impl<S> NormalizeTarget<S> {
    /// Wraps `inner` with `rules`.
    pub fn new(inner: S, rules: TargetRules) -> Self {
        NormalizeTargetLayer::new(rules).layer(inner)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Gives the inner service back.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for NormalizeTarget<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = NormalizeTargetFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match normalize_target(&mut req, &self.rules) {
            Ok(()) => NormalizeTargetFuture {
                state: State::Called {
                    future: self.inner.call(req),
                },
            },
            Err(refused) => {
                tracing::debug!(method = %req.method(), uri = %req.uri(), %refused, "request target refused");
                NormalizeTargetFuture {
                    state: State::Refused {
                        error: Some(refused.into_failure()),
                    },
                }
            }
        }
    }
}

/// The future of [`NormalizeTarget`].
#[pin_project]
#[derive(Debug)]
pub struct NormalizeTargetFuture<F> {
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
    Refused {
        error: Option<BoxError>,
    },
}

impl<F, T, E> Future for NormalizeTargetFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx).map_err(Into::into),
            StateProj::Refused { error } => Poll::Ready(Err(error
                .take()
                .expect("NormalizeTargetFuture polled after completion"))),
        }
    }
}
