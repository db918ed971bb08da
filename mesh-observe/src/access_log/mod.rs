//! [`AccessLogLayer`] (feature `access-log`): one structured line per request, with the trace id,
//! the peer's identity, status, duration and outcome class.
//!
//! The line is written when the response body ends (trailers included, so a gRPC status in the
//! trailers decides the outcome), when the service fails, or when the request is abandoned
//! (outcome `cancelled`): exactly once per request. By default it is a `tracing` event at `INFO`
//! with target `mesh_observe::access_log`, its fields as structured `tracing` fields and its
//! message in logfmt (see [`AccessLogRecord`]'s `Display`); pass a [sink](AccessLogLayer::with_sink)
//! to send records elsewhere.
//!
//! The trace and span ids come from the [`opentelemetry::Context`] in the request extensions,
//! which [`ServerTraceLayer`](crate::ServerTraceLayer) puts there: place the access log *inside*
//! the trace layer. Without one, the current context is used (empty ids if there is none).
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::{Arc, Mutex};
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use mesh_observe::access_log::{AccessLogLayer, AccessLogRecord};
//! use mesh_observe::{ServerTraceLayer, TraceConfig};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let lines = Arc::new(Mutex::new(Vec::new()));
//! let sink = lines.clone();
//! let service = ServiceBuilder::new()
//!     .layer(ServerTraceLayer::new(TraceConfig::new()))
//!     .layer(AccessLogLayer::with_sink(move |r: &AccessLogRecord| {
//!         sink.lock().unwrap().push(r.to_string())
//!     }))
//!     .service_fn(|_req: Request<()>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
//!     });
//! let req = Request::get("/orders/42")
//!     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
//!     .body(())
//!     .unwrap();
//! let res = service.oneshot(req).await.unwrap();
//! res.into_body().collect().await.unwrap();
//! let line = lines.lock().unwrap().pop().unwrap();
//! assert!(line.starts_with("trace_id=4bf92f3577b34da6a3ce929d0e0e4736 "));
//! assert!(line.contains(" status=200 ") && line.ends_with(" outcome=success"));
//! # }
//! ```

mod layer;
mod record;
mod service;

pub use layer::AccessLogLayer;
pub use record::{AccessLogRecord, LogOnEnd};
pub use service::{AccessLog, AccessLogBody, ResponseFuture};
