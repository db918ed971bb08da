//! [`MapBodyLayer`]: boxes a service's response body into [`Body`], so services with different
//! body types fit one boxed service type.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use pin_project::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::Body;
use crate::error::BoxError;

/// Wraps a service in [`MapBody`]: its responses come back with a [`Body`].
///
/// This is `.map_response(|res| res.map(Body::new))` with a name, so a stack can be boxed into
/// [`BoxCloneHttpService`](crate::service::BoxCloneHttpService) without a closure whose body type
/// must be spelled out. A response that already has a [`Body`] is not boxed again.
///
/// ```
/// use http::{Request, Response};
/// use mesh_core::body::MapBodyLayer;
/// use mesh_core::service::BoxCloneHttpService;
/// use tower::ServiceBuilder;
///
/// let svc = ServiceBuilder::new()
///     .layer(MapBodyLayer::new())
///     .service_fn(|_req: Request<mesh_core::Body>| async {
///         Ok::<_, std::io::Error>(Response::new(String::from("hello")))
///     });
/// let _boxed: BoxCloneHttpService = BoxCloneHttpService::new(
///     ServiceBuilder::new().map_err(Into::into).service(svc),
/// );
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct MapBodyLayer;

impl MapBodyLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for MapBodyLayer {
    type Service = MapBody<S>;

    fn layer(&self, inner: S) -> MapBody<S> {
        MapBody { inner }
    }
}

/// A service whose response body is boxed into [`Body`]; see [`MapBodyLayer`].
///
/// Readiness, errors and cloning are the inner service's.
#[derive(Clone, Debug)]
pub struct MapBody<S> {
    inner: S,
}

impl<S> MapBody<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req, B> Service<Req> for MapBody<S>
where
    S: Service<Req, Response = Response<B>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = MapBodyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        MapBodyFuture {
            inner: self.inner.call(req),
        }
    }
}

/// The response future of [`MapBody`].
#[pin_project]
#[derive(Debug)]
pub struct MapBodyFuture<F> {
    #[pin]
    inner: F,
}

impl<F, B, E> Future for MapBodyFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .inner
            .poll(cx)
            .map(|res| res.map(|res| res.map(Body::new)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn boxes_the_response_body_and_keeps_the_rest() {
        let svc = MapBodyLayer::new().layer(tower::service_fn(|req: Request<()>| async move {
            let mut res = Response::new(format!("to {}", req.uri().path()));
            *res.status_mut() = http::StatusCode::ACCEPTED;
            Ok::<_, std::convert::Infallible>(res)
        }));
        let res = svc
            .oneshot(Request::get("/x").body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), http::StatusCode::ACCEPTED);
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"to /x");
    }
}
