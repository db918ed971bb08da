//! [`TryMake`]: an endpoint factory that may fail, without panicking inside the balancer.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use mesh_core::{BoxError, Endpoint, EndpointKey};
use pin_project::pin_project;
use tower_service::Service;

use super::MakeEndpoint;

/// A [`MakeEndpoint`] from a fallible `Fn(&Endpoint) -> Result<S, E>`.
///
/// A factory sometimes cannot build an endpoint's service: a discovered endpoint names an
/// identity the TLS settings refuse, a per-endpoint limit cannot be made. Panicking would take the
/// balancer (and every caller) down for one bad endpoint; dropping it silently would hide it. Here
/// a failed build becomes a [`TryMadeEndpoint`] whose `poll_ready` fails with [`MakeFailed`]
/// (naming the endpoint and carrying the factory's error as its `source`). The balancer treats
/// that like any endpoint service failing readiness: it counts a failure on the endpoint's outlier
/// gate, keeps routing to the other endpoints, and calls the factory again on its next poll, so an
/// endpoint whose build succeeds later (after a rotation, say) comes into rotation by itself.
///
/// ```
/// use mesh_balance::{MakeEndpoint, TryMake};
/// use mesh_core::Endpoint;
///
/// let make = TryMake::new(|ep: &Endpoint| match ep.identity() {
///     Some(id) => Ok(id.to_string()),
///     None => Err("no expected identity"),
/// });
/// let ep = Endpoint::new("127.0.0.1:80".parse().unwrap());
/// let _service = make.make_endpoint(&ep); // fails its readiness, does not panic
/// ```
#[derive(Clone, Debug)]
pub struct TryMake<F> {
    make: F,
}

impl<F> TryMake<F> {
    /// Wraps the fallible factory `make`.
    pub fn new(make: F) -> Self {
        Self { make }
    }
}

impl<F, S, E> MakeEndpoint for TryMake<F>
where
    F: Fn(&Endpoint) -> Result<S, E>,
    E: Into<BoxError>,
{
    type Service = TryMadeEndpoint<S>;

    fn make_endpoint(&self, endpoint: &Endpoint) -> TryMadeEndpoint<S> {
        match (self.make)(endpoint) {
            Ok(service) => TryMadeEndpoint(Made::Service(service)),
            Err(error) => {
                let failed = MakeFailed {
                    endpoint: endpoint.key(),
                    source: Arc::from(error.into()),
                };
                tracing::debug!(endpoint = %failed.endpoint, error = %failed.source, "endpoint service could not be built");
                TryMadeEndpoint(Made::Failed(failed))
            }
        }
    }
}

/// The service [`TryMake`] builds: the factory's service, or one that fails readiness with
/// [`MakeFailed`]. Clones share the failure.
#[derive(Clone, Debug)]
pub struct TryMadeEndpoint<S>(Made<S>);

#[derive(Clone, Debug)]
enum Made<S> {
    Service(S),
    Failed(MakeFailed),
}

impl<S, Req> Service<Req> for TryMadeEndpoint<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = TryMadeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.0 {
            Made::Service(service) => service.poll_ready(cx).map_err(Into::into),
            Made::Failed(failed) => Poll::Ready(Err(failed.clone().into())),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match &mut self.0 {
            Made::Service(service) => TryMadeFuture::Call(service.call(req)),
            // Only reachable when a caller skips `poll_ready`, which already failed.
            Made::Failed(failed) => TryMadeFuture::Failed(Some(failed.clone())),
        }
    }
}

/// The response future of [`TryMadeEndpoint`].
#[pin_project(project = TryMadeProj)]
#[derive(Debug)]
pub enum TryMadeFuture<F> {
    /// The built service's call.
    Call(#[pin] F),
    /// The build failed.
    Failed(Option<MakeFailed>),
}

impl<F, T, E> Future for TryMadeFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            TryMadeProj::Call(future) => future.poll(cx).map_err(Into::into),
            TryMadeProj::Failed(failed) => Poll::Ready(Err(match failed.take() {
                Some(failed) => failed.into(),
                None => "TryMadeFuture polled after completion".into(),
            })),
        }
    }
}

/// The service of an endpoint could not be built; the factory's error is the
/// [`source`](Error::source).
#[derive(Clone, Debug)]
pub struct MakeFailed {
    endpoint: EndpointKey,
    source: Arc<dyn Error + Send + Sync>,
}

impl MakeFailed {
    /// The endpoint whose service could not be built.
    pub fn endpoint(&self) -> EndpointKey {
        self.endpoint
    }
}

impl fmt::Display for MakeFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the service of endpoint {} could not be built: {}",
            self.endpoint, self.source
        )
    }
}

impl Error for MakeFailed {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use http::{Request, Response};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::discover::StaticDiscover;
    use crate::{Balance, BalanceConfig};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test(start_paused = true)]
    async fn failed_build_is_a_typed_readiness_error_and_the_balancer_routes_around_it() {
        let make = TryMake::new(|ep: &Endpoint| {
            if ep.addr().port() == 1 {
                return Err(BoxError::from("refused by the factory"));
            }
            let port = ep.addr().port();
            Ok(tower::service_fn(move |_req: Request<()>| async move {
                Ok::<_, Infallible>(Response::new(port.to_string()))
            }))
        });

        let mut bad = make.make_endpoint(&Endpoint::new(addr(1)));
        let err = ServiceExt::<Request<()>>::ready(&mut bad)
            .await
            .unwrap_err();
        let failed = err.downcast_ref::<MakeFailed>().expect("MakeFailed");
        assert_eq!(failed.endpoint(), EndpointKey(addr(1)));
        assert!(
            failed.to_string().contains("refused by the factory"),
            "{failed}"
        );

        let discover = StaticDiscover::new([Endpoint::new(addr(1)), Endpoint::new(addr(2))]);
        let balance = Balance::new(discover, make, BalanceConfig::default().seed(1)).unwrap();
        for _ in 0..20 {
            let res = balance
                .clone()
                .oneshot(Request::new(()))
                .await
                .expect("the good endpoint answers");
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"2");
        }
    }
}
