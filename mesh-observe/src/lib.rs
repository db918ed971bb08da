//! Observability for the mesh-* stack: trace context in and out, spans and OpenTelemetry request
//! metrics, as tower layers.
//!
//! ```text
//! inbound:  extract traceparent/tracestate or B3 → server span → http.server.request.duration
//! outbound: child span → inject traceparent (and B3) → http.client.request.duration
//! outcome of each request: mesh_core::classify (gRPC trailers included, measured to body end)
//! ```
//!
//! - [`ServerTraceLayer`]: continues the caller's trace, one `Server` span per request, request
//!   metrics, the span made current (and put in the request extensions) for outbound calls.
//! - [`ClientTraceLayer`]: one `Client` span per outbound request, its context injected into the
//!   request headers, request metrics.
//! - [`propagation`]: strict W3C Trace Context and B3 parsing and writing, usable on their own or as
//!   OpenTelemetry `TextMapPropagator`s; invalid headers are ignored and counted.
//! - [`metrics`]: the names and bucket boundaries recorded, and the table of every metric name the
//!   workspace records.
//! - `prometheus` (feature `prometheus`): a text-format `/metrics` service fed by the
//!   OpenTelemetry SDK.
//! - `otlp` (feature `otlp`): SDK tracer and meter providers exporting over OTLP/HTTP (protobuf).
//! - `access_log` (feature `access-log`): one structured line per request with trace id, peer
//!   identity, status, duration and outcome class.
//! - [`RouteTemplate`]: the request extension that supplies `http.route` (raw paths never become
//!   attributes of metrics).
//!
//! Library code records through the `opentelemetry` API only (a no-op until the application
//! installs a provider); the tracer and meter come from [`TraceConfig`], defaulting to the global
//! ones named `mesh-observe`.
//!
//! # A round trip
//!
//! A request entering a service through [`ServerTraceLayer`] and leaving it through
//! [`ClientTraceLayer`] keeps its trace id; each hop gets a new span id whose parent is the
//! previous hop's span:
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use mesh_observe::{ClientTraceLayer, ServerTraceLayer, TraceConfig};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // The downstream transport: records what it was sent.
//! let downstream = tower::service_fn(|req: Request<()>| async move {
//!     let traceparent = req.headers()["traceparent"].to_str().unwrap().to_owned();
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(traceparent))))
//! });
//! let client = ServiceBuilder::new()
//!     .layer(ClientTraceLayer::new(TraceConfig::new()))
//!     .service(downstream);
//!
//! // The handler forwards the incoming request's context to its outbound call.
//! let handler = tower::service_fn(move |req: Request<()>| {
//!     let mut client = client.clone();
//!     async move {
//!         let mut out = Request::get("http://inventory/stock").body(()).unwrap();
//!         let cx = req.extensions().get::<opentelemetry::Context>().unwrap().clone();
//!         out.extensions_mut().insert(cx);
//!         client.ready().await?.call(out).await
//!     }
//! });
//! let mut server = ServiceBuilder::new()
//!     .layer(ServerTraceLayer::new(TraceConfig::new()))
//!     .service(handler);
//!
//! let req = Request::get("/")
//!     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
//!     .body(())
//!     .unwrap();
//! let response = server.ready().await.unwrap().call(req).await.unwrap();
//! let sent = response.into_body().collect().await.unwrap().to_bytes();
//! // No provider is installed here, so the context is forwarded as it came; with an SDK installed
//! // the trace id is the same and the parent id is the client span's.
//! assert!(sent.starts_with(b"00-4bf92f3577b34da6a3ce929d0e0e4736-"));
//! # }
//! ```

#[cfg(feature = "access-log")]
pub mod access_log;
pub mod client;
mod config;
mod future;
pub mod metrics;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "prometheus")]
pub mod prometheus;
pub mod propagation;
mod recorder;
mod route;
pub mod server;

pub use client::{ClientTrace, ClientTraceLayer};
pub use config::TraceConfig;
pub use future::{ResponseFuture, TracedBody};
pub use recorder::RequestRecorder;
pub use route::RouteTemplate;
pub use server::{ServerTrace, ServerTraceLayer};
