//! Inbound: requests from peer sidecars (already through mTLS), authorized, observed, limited and
//! forwarded to the local app in plaintext.
//!
//! The app sees this sidecar's server span as the parent of its own work: the trace context the
//! caller sent is replaced by the server span's (same trace id, the span's own id), in the formats
//! the caller used — W3C `traceparent` (with its `tracestate`) and/or B3 — or W3C when the caller
//! sent none, so that the app's spans join the trace the sidecar started.

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;
use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
use mesh_core::error::ErrorResponseLayer;
use mesh_core::proxy::{NormalizeTargetLayer, TargetRules, remove_hop_by_hop_headers};
use mesh_core::{Body, BoxError, Endpoint};
use mesh_examples::config::Sidecar;
use mesh_examples::stack::forwarded_body;
use mesh_observe::propagation::{self, B3Encoding, Propagation};
use mesh_observe::{ServerTraceLayer, TraceConfig};
use mesh_retry::limit::{ConcurrencyConfig, ConcurrencyLimitLayer};
use mesh_tls::authz::AuthzLayer;
use opentelemetry::metrics::Meter;
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder};

/// The inbound service: never fails (failures become responses).
pub(crate) type Inbound = InboundOf<Incoming>;

/// The inbound service over request bodies of type `B` (tests send their own bodies).
pub(crate) type InboundOf<B> =
    BoxCloneService<Request<B>, Response<Body>, std::convert::Infallible>;

/// Builds the inbound service in front of the configured local app.
pub(crate) fn build(config: &Sidecar, meter: &Meter) -> Result<Inbound, BoxError> {
    let app = HttpClient::<Body>::new(
        Endpoint::new(config.app.addr),
        TcpConnector::new(),
        ClientConfig::default().protocol(config.app.protocol),
    );
    stack(config, meter, app)
}

/// ErrorResponse → NormalizeTarget → Authz → ServerTrace → ConcurrencyLimit → hop-by-hop removal and trace context
/// of the server span → `app`.
fn stack<B, A, AB>(config: &Sidecar, meter: &Meter, app: A) -> Result<InboundOf<B>, BoxError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    A: Service<Request<Body>, Response = Response<AB>> + Clone + Send + 'static,
    A::Error: Into<BoxError>,
    A::Future: Send + 'static,
    AB: hyper::body::Body<Data = Bytes> + Send + 'static,
    AB::Error: Into<BoxError>,
{
    let limit = ConcurrencyConfig::fixed(config.app.max_concurrency)
        .algorithm(config.app.limit)
        .name("inbound")
        .meter(meter.clone());
    let body_idle_timeout = config.request_body_idle_timeout;
    let service = ServiceBuilder::new()
        .map_response(|res: Response<_>| res.map(Body::new))
        .layer(ErrorResponseLayer::new())
        // One host and a normalised path (CONNECT refused) before authorization reads them; the
        // app gets the same target the rules saw.
        .layer(NormalizeTargetLayer::new(TargetRules::default()))
        .layer(AuthzLayer::new(config.authz.clone().meter(meter.clone())))
        .layer(ServerTraceLayer::new(
            TraceConfig::new().meter(meter.clone()),
        ))
        .layer(ConcurrencyLimitLayer::new(limit)?)
        .map_request(move |req: Request<B>| {
            let mut req = req.map(|body| forwarded_body(body, body_idle_timeout));
            remove_hop_by_hop_headers(req.headers_mut());
            forward_server_span(&mut req);
            req
        })
        .service(app);
    Ok(BoxCloneService::new(service))
}

/// Replaces the request's trace headers by the context of the server span that
/// [`ServerTraceLayer`] put in its extensions, so the app's parent is this hop, not the caller.
/// Without that extension the headers are left as they are.
fn forward_server_span<B>(req: &mut Request<B>) {
    let Some(context) = req.extensions().get::<opentelemetry::Context>() else {
        return;
    };
    let context = context.clone();
    let formats = formats_of(req.headers());
    propagation::inject_context(&context, formats, req.headers_mut());
}

/// The trace formats the caller used (W3C when it used none).
fn formats_of(headers: &HeaderMap) -> Propagation {
    let b3 = if headers.contains_key("b3") {
        Some(B3Encoding::Single)
    } else if headers.contains_key("x-b3-traceid") {
        Some(B3Encoding::Multi)
    } else {
        None
    };
    let w3c = headers.contains_key("traceparent") || b3.is_none();
    Propagation::default().w3c(w3c).b3(b3)
}

#[cfg(test)]
mod tests;
