//! [`ServerTraceLayer`]: a span and request metrics for every request a server receives, continuing
//! the caller's trace.
//!
//! Per request, the [`ServerTrace`] service:
//!
//! 1. extracts the caller's context from `traceparent`/`tracestate` or B3 (see
//!    [`propagation::extract`](crate::propagation::extract)); invalid headers are counted in
//!    `mesh.trace_context.rejected` and ignored, so the request starts a new trace;
//! 2. starts a `SpanKind::Server` span named `"{method} {route}"` (or `"{method}"`) as the child of
//!    that context, with the attributes of the OpenTelemetry HTTP semantic conventions
//!    (`http.request.method`, `url.path`, `url.scheme` when known, `http.route` from a
//!    [`RouteTemplate`](crate::RouteTemplate) extension only, `server.address`/`server.port` from the
//!    `Host`, `network.peer.address`/`network.peer.port` from mesh-core's
//!    [`ConnectionInfo`](mesh_core::server::ConnectionInfo), `network.protocol.version`) and
//!    `mesh.peer.identity` — the SPIFFE ID — when mesh-tls has put a
//!    [`PeerIdentity`](mesh_core::PeerIdentity) in the request;
//! 3. puts the span's [`opentelemetry::Context`] in the request extensions and makes it current
//!    while the inner future runs, so outbound calls through a [`ClientTraceLayer`](crate::ClientTraceLayer)
//!    are its children;
//! 4. when the response body ends (trailers included), sets `http.response.status_code`,
//!    `error.type` and the span status from mesh-core's classifier — a gRPC status in trailers
//!    counts — ends the span and records `http.server.request.duration` (seconds, semconv buckets);
//!    `http.server.active_requests` covers the same interval.
//!
//! Span attributes are set only when the span is recording, so with no provider installed the
//! per-request cost is the header extraction, two clock reads, the OpenTelemetry context bookkeeping
//! (a boxed no-op span, the context's reference-counted entries, one request extension) and the
//! metric calls (no-ops).
//!
//! # Why the OpenTelemetry API directly, not `tracing` + tracing-opentelemetry
//!
//! The span needs a remote parent, a span kind, typed attributes, a status and an end time at
//! *body* end, in another task than the one that started it. The OpenTelemetry API expresses all of
//! that directly; through `tracing` it takes a bridge crate, a `tracing` subscriber layer the
//! application must install, and extension traits to set the parent and status. One layer fewer,
//! one dependency fewer, and the spans reach any OpenTelemetry provider the application installs.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use mesh_observe::{RouteTemplate, ServerTraceLayer, TraceConfig};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let handler = tower::service_fn(|req: Request<()>| async move {
//!     // The server span is in the extensions, ready to be the parent of outbound calls.
//!     assert!(req.extensions().get::<opentelemetry::Context>().is_some());
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
//! });
//! let mut service = ServiceBuilder::new()
//!     .layer(ServerTraceLayer::new(TraceConfig::new()))
//!     .service(handler);
//!
//! let mut req = Request::get("/orders/42")
//!     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
//!     .body(())
//!     .unwrap();
//! req.extensions_mut().insert(RouteTemplate::from_static("/orders/{id}"));
//! let response = service.ready().await.unwrap().call(req).await.unwrap();
//! assert_eq!(response.status(), 200);
//! # }
//! ```

mod layer;
mod service;

pub use layer::ServerTraceLayer;
pub use service::ServerTrace;
