//! The assembly behind [`ClientBuilder::build`](super::ClientBuilder::build), once the settings
//! are checked: the per-endpoint factory, the balancer, the layers above it.

use std::sync::Arc;

use http::{Request, Response};
use mesh_balance::{Balance, BalanceConfig, TryMake};
use mesh_core::body::{MapBody, MapBodyLayer};
use mesh_core::classify::MeshClassifier;
use mesh_core::client::{ClientConfig, Connect, HttpClient};
use mesh_core::endpoint::InvalidEndpoint;
use mesh_core::{Body, BoxError, Endpoint, Identity};
use mesh_observe::{ClientTrace, ClientTraceLayer, TraceConfig};
use mesh_retry::body::ReplayBody;
use mesh_retry::breaker::{BreakerRegistry, CircuitBreaker};
use mesh_retry::budget::WindowBudget;
use mesh_retry::retry::{Retry, RetryLayer, RetryLimit};
use mesh_retry::timeout::{Direct, RequestTimeout, RequestTimeoutLayer, TimeoutConfig};
use opentelemetry::metrics::Meter;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use super::boxed::BoxFuture;
use super::discovery::BoxDiscover;
use super::{Client, Handles};
use crate::ConfigError;

/// One endpoint's service as [`ClientBuilder::wrap_endpoints`](super::ClientBuilder::wrap_endpoints)
/// sees it: boxed, taking the retry layer's replayable body, answering with a mesh-core [`Body`].
pub type EndpointService = BoxCloneSyncService<Request<ReplayBody<Body>>, Response<Body>, BoxError>;

pub(super) type WrapEndpoints =
    Arc<dyn Fn(&Endpoint, EndpointService) -> EndpointService + Send + Sync>;

/// The checked settings, waiting for a connector.
pub(super) struct Parts {
    pub(super) discover: BoxDiscover,
    pub(super) identity: Option<Identity>,
    pub(super) http: ClientConfig,
    pub(super) budget: WindowBudget,
    pub(super) breakers: BreakerRegistry,
    pub(super) balance: BalanceConfig,
    pub(super) retry: RetryLayer,
    pub(super) retry_limit: RetryLimit,
    pub(super) meter: Option<Meter>,
    pub(super) timeout: TimeoutConfig,
    pub(super) trace: TraceConfig,
    pub(super) wrap_endpoints: Option<WrapEndpoints>,
}

/// The per-endpoint factory the balancer holds: boxed once per client (called once per endpoint,
/// never per request), so the stack's type does not carry the connector's or a closure's type.
pub(super) type MakeFn<S> = Box<dyn Fn(&Endpoint) -> Result<S, InvalidEndpoint> + Send + Sync>;

/// The endpoint service of a client without `wrap_endpoints`: the breaker over the HTTP client.
pub(super) type DirectEndpoint = CircuitBreaker<HttpClient<ReplayBody<Body>>, MeshClassifier>;

/// The whole assembled stack over endpoint services `S`, as a named type: the [`Client`]'s
/// response future holds the call inline; the retry layer's future, the large one, is boxed
/// where it is made ([`BoxFuture`]).
pub(super) type Stack<S> = MapBody<
    ClientTrace<RequestTimeout<BoxFuture<Retry<Balance<BoxDiscover, TryMake<MakeFn<S>>>>>, Direct>>,
>;

impl Parts {
    pub(super) fn assemble<C: Connect + Sync>(self, connector: C) -> Result<Client, ConfigError> {
        let identity = self.identity.clone();
        let http = self.http.clone();
        let breakers = self.breakers.clone();
        // Only an endpoint that cannot take the expected identity fails here; it then fails its
        // readiness with a typed error and the balancer routes around it.
        let endpoint_service = move |ep: &Endpoint| -> Result<DirectEndpoint, InvalidEndpoint> {
            let endpoint = match &identity {
                Some(id) if ep.identity().is_none() => {
                    ep.to_builder().identity(id.as_str()).build()?
                }
                _ => ep.clone(),
            };
            let client =
                HttpClient::<ReplayBody<Body>>::new(endpoint, connector.clone(), http.clone());
            Ok(CircuitBreaker::with_handle(
                client,
                breakers.get(ep.addr()),
                MeshClassifier::new(),
            ))
        };
        match self.wrap_endpoints.clone() {
            None => {
                let (stack, handles) = self.finish(Box::new(endpoint_service))?;
                Ok(Client::direct(stack, handles))
            }
            Some(wrap) => {
                let make: MakeFn<EndpointService> = Box::new(move |ep: &Endpoint| {
                    let service = endpoint_service(ep)?;
                    let boxed = EndpointService::new(
                        ServiceBuilder::new()
                            .layer(MapBodyLayer::new())
                            .service(service),
                    );
                    Ok(wrap(ep, boxed))
                });
                let (stack, handles) = self.finish(make)?;
                Ok(Client::wrapped(stack, handles))
            }
        }
    }

    fn finish<S: Send + 'static>(
        self,
        make: MakeFn<S>,
    ) -> Result<(Stack<S>, Handles), ConfigError> {
        let Parts {
            discover,
            budget,
            breakers,
            balance,
            mut retry,
            retry_limit,
            meter,
            timeout,
            trace,
            ..
        } = self;
        let balance =
            Balance::new(discover, TryMake::new(make), balance).map_err(|e| e.within("balance"))?;
        let handle = balance.handle();
        retry = retry.budget(budget.clone()).limit(retry_limit.clone());
        if let Some(meter) = meter {
            retry = retry.meter(meter);
        }
        let stack = ServiceBuilder::new()
            .layer(MapBodyLayer::new())
            .layer(ClientTraceLayer::new(trace))
            .layer(RequestTimeoutLayer::new(timeout).hand_deadline_directly())
            .layer_fn(BoxFuture::new)
            .layer(retry)
            .service(balance);
        Ok((
            stack,
            Handles {
                balance: handle,
                breakers,
                budget,
                retry_limit,
            },
        ))
    }
}
