//! [`ClientTraceLayer`]: a child span and request metrics for every outbound request, with the trace
//! context injected into its headers.
//!
//! Per request, the [`ClientTrace`] service:
//!
//! 1. picks the parent: an [`opentelemetry::Context`] in the request extensions (the
//!    [`ServerTraceLayer`](crate::ServerTraceLayer) puts one there, so a forwarded request keeps its
//!    trace), else [`Context::current`](opentelemetry::Context::current) (set by the server layer
//!    while a handler runs), else none (a new trace);
//! 2. starts a `SpanKind::Client` span named after the method, with `http.request.method`,
//!    `server.address`, `server.port` and `url.full`;
//! 3. removes any trace header already on the request and injects the span's context — the *new*
//!    span id as parent id, the sampling decision in the flags — in the configured
//!    [`Propagation`](crate::propagation::Propagation) formats (W3C by default);
//! 4. when the response head arrives, takes `network.protocol.version` from the response: the
//!    version the connection actually used (`2` over HTTP/2 even for a request built as HTTP/1.1,
//!    the `http` crate's default), so it is absent when no response came;
//! 5. when the response body ends (trailers included) or the call fails, sets status code,
//!    `error.type` and span status from mesh-core's classifier, ends the span and records
//!    `http.client.request.duration` (attributes: method, `server.address`, `server.port`,
//!    `network.protocol.version`, status code, `error.type`); `http.client.active_requests` covers
//!    the same interval.
//!
//! With no tracer provider installed, OpenTelemetry's no-op tracer hands back the parent's span
//! context, so the incoming trace context is forwarded unchanged (no new span id is invented).
//!
//! # Allocation
//!
//! Per request (after the first request of each metric series, which binds it when the SDK is
//! in the build; see [`TraceConfig::meter`](crate::TraceConfig::meter)): a recording span stores
//! its attributes (one list, one copy of `url.full`); each
//! injected header owns its bytes (one allocation for `traceparent`, none for an absent
//! `tracestate`). With the SDK's tracer given to [`TraceConfig::tracer`](crate::TraceConfig::tracer)
//! (feature `sdk`), the span is held inline and gets its attributes when it is built, in one list
//! with room for those set at its end; with any other tracer (the global one by default) the
//! OpenTelemetry API boxes the span and the attributes are set one by one, growing the span's
//! list. `server.address` is shared: the layer remembers the host of the last few authorities
//! it saw (up to 8) as reference-counted values, so the metrics and the span take it without a
//! copy. The span is kept by the recorder rather than put in an OpenTelemetry `Context` (one
//! allocation fewer). Attributes are built only for a span that may record: a boxed span that
//! records, or an SDK span whose parent is not known to be unsampled (a root span the SDK's
//! sampler then drops wastes the list). Everything else is static strings or integers.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use mesh_observe::propagation::{B3Encoding, Propagation};
//! use mesh_observe::{ClientTraceLayer, TraceConfig};
//! use opentelemetry::trace::TraceContextExt;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let transport = tower::service_fn(|req: Request<()>| async move {
//!     // A parent came in with the request, so it goes out (no provider: forwarded as is).
//!     assert!(req.headers().contains_key("traceparent"));
//!     assert!(req.headers().contains_key("b3"));
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
//! });
//! let config = TraceConfig::new().propagation(Propagation::default().b3(Some(B3Encoding::Single)));
//! let mut client = ServiceBuilder::new()
//!     .layer(ClientTraceLayer::new(config))
//!     .service(transport);
//!
//! let parent = opentelemetry::Context::new().with_remote_span_context(
//!     opentelemetry::trace::SpanContext::new(
//!         opentelemetry::trace::TraceId::from(7),
//!         opentelemetry::trace::SpanId::from(9),
//!         opentelemetry::trace::TraceFlags::SAMPLED,
//!         true,
//!         Default::default(),
//!     ),
//! );
//! let mut req = Request::get("http://orders:8080/items").body(()).unwrap();
//! req.extensions_mut().insert(parent);
//! let response = client.ready().await.unwrap().call(req).await.unwrap();
//! assert_eq!(response.status(), 200);
//! # }
//! ```

mod authority;
mod layer;
mod service;

pub use layer::ClientTraceLayer;
pub use service::ClientTrace;
