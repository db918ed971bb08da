//! Inbound: requests from peer sidecars (already through mTLS), authorized, observed, limited and
//! forwarded to the local app in plaintext.

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
use mesh_core::error::ErrorResponseLayer;
use mesh_core::proxy::remove_hop_by_hop_headers;
use mesh_core::{Body, BoxError, Endpoint};
use mesh_examples::config::Sidecar;
use mesh_observe::{ServerTraceLayer, TraceConfig};
use mesh_retry::limit::{ConcurrencyConfig, ConcurrencyLimitLayer};
use mesh_tls::authz::AuthzLayer;
use opentelemetry::metrics::Meter;
use tower::ServiceBuilder;
use tower::util::BoxCloneService;

/// The inbound service: never fails (failures become responses).
pub(crate) type Inbound =
    BoxCloneService<Request<Incoming>, Response<Body>, std::convert::Infallible>;

/// Builds ErrorResponse → Authz → ServerTrace → ConcurrencyLimit → hop-by-hop removal → app client.
pub(crate) fn build(config: &Sidecar, meter: &Meter) -> Result<Inbound, BoxError> {
    let app = HttpClient::<Body>::new(
        Endpoint::new(config.app.addr),
        TcpConnector::new(),
        ClientConfig::default().protocol(config.app.protocol),
    );
    let limit = ConcurrencyLimitLayer::new(
        ConcurrencyConfig::fixed(config.app.max_concurrency)
            .name("inbound")
            .meter(meter.clone()),
    )?;
    let service = ServiceBuilder::new()
        .map_response(|res: Response<_>| res.map(Body::new))
        .layer(ErrorResponseLayer::new())
        .layer(AuthzLayer::new(config.authz.clone().meter(meter.clone())))
        .layer(ServerTraceLayer::new(
            TraceConfig::new().meter(meter.clone()),
        ))
        .layer(limit)
        .map_request(|req: Request<Incoming>| {
            let mut req = req.map(Body::new);
            remove_hop_by_hop_headers(req.headers_mut());
            req
        })
        .service(app);
    Ok(BoxCloneService::new(service))
}
