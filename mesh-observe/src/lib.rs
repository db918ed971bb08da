//! Observability for the mesh-* stack: trace context in and out, spans, OpenTelemetry request metrics and
//! a Prometheus endpoint.
//!
//! **Status: skeleton.** The crate's API is not implemented yet; this page is the plan it will follow.
//!
//! ```text
//! server side: extract traceparent/tracestate or B3 → span → http.server.request.duration
//! client side: child span → inject context → http.client.request.duration
//! outcome of each request: mesh_core::classify (gRPC trailers included)
//! ```
//!
//! Library code records through the `opentelemetry` API only; installing a provider (OTLP, Prometheus)
//! is the application's choice, behind feature-gated helpers. The peer's address comes from
//! [`mesh_core::server`]'s connection information in request extensions.
