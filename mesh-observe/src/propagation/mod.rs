//! Trace context in and out of HTTP headers: W3C `traceparent` / `tracestate` and B3 (single `b3`
//! and multi-header `X-B3-*`).
//!
//! Incoming: [`extract`] reads the remote parent from a [`HeaderMap`](http::HeaderMap), trying W3C
//! first, then `b3`, then `X-B3-*`. Parsing is strict — exact field lengths, lowercase hex only, no
//! all-zero ids, no `traceparent` version `ff`, a combined `tracestate` of at most 32 valid,
//! distinct members (a repeated key keeps its first occurrence) — and never fails a request: a header that is malformed, oversized or repeated
//! is ignored and reported as a [`Rejection`], which the layers count in
//! [`mesh.trace_context.rejected`](crate::metrics::TRACE_CONTEXT_REJECTED). A rejected
//! `traceparent` means a new trace starts and `tracestate` is dropped, as W3C Trace Context
//! requires.
//!
//! Outgoing: [`inject`] writes a span context in the formats a [`Propagation`] selects (W3C by
//! default), after removing any trace header already on the request.
//!
//! A valid `tracestate` list that OpenTelemetry's own `TraceState` refuses (opentelemetry 0.33
//! refuses a multi-tenant key with a 14-character system id, which W3C Trace Context allows) is
//! not lost: [`extract_context`] keeps it in the OpenTelemetry `Context` beside the remote parent
//! and [`inject_context`] writes it again. The trace layers use these two.
//!
//! # Bounds
//!
//! A `traceparent`, `b3` or `X-B3-*` value longer than [`MAX_HEADER_LEN`] bytes, or a combined
//! `tracestate` longer than [`MAX_TRACESTATE_LEN`] bytes, is rejected as
//! [oversized](RejectReason::Oversized) without being parsed.
//!
//! # Why our own parsers, and the `TextMapPropagator` implementations
//!
//! The OpenTelemetry SDK's `TraceContextPropagator` is not usable here: the SDK is not a library
//! dependency of this crate (the application picks the SDK), and it reads headers through the
//! string-map `Extractor` interface, which allocates a `Vec` per lookup and cannot tell us *why* a
//! header was ignored, so it could not be counted. The parsers here work on header bytes directly
//! and report each rejection. So that applications can still register the same behaviour globally
//! (`opentelemetry::global::set_text_map_propagator`) or compose it with other propagators,
//! [`W3cPropagator`] and [`B3Propagator`] implement OpenTelemetry's
//! [`TextMapPropagator`](opentelemetry::propagation::TextMapPropagator) trait on top of the same
//! parsers.
//!
//! # B3 details
//!
//! A 64-bit B3 trace id is widened with leading zeros; outgoing B3 ids are always 128-bit. A B3
//! sampling state without ids (`b3: 0`) carries no parent and is not a rejection. An absent
//! sampling state ("deferred") is read as not sampled, since an OpenTelemetry span context cannot
//! say "deferred"; debug (`d`, `X-B3-Flags: 1`) is read as sampled.

mod b3;
mod headers;
mod hex;
mod propagator;
mod rejection;
mod tracestate;
mod w3c;

pub(crate) use headers::inject_child;
pub use headers::{extract, extract_context, inject, inject_context};
pub use propagator::{B3Propagator, W3cPropagator};
pub use rejection::{RejectReason, Rejection, TraceHeader};

/// The longest `traceparent`, `b3` or `X-B3-*` value parsed, in bytes: 512.
///
/// A version-00 `traceparent` is 55 bytes and a `b3` header at most 68; the margin leaves room for
/// future `traceparent` versions, which may append fields, while keeping parsing cost bounded.
pub const MAX_HEADER_LEN: usize = 512;

/// The longest combined `tracestate` parsed, in bytes: 4096.
///
/// W3C Trace Context asks vendors to propagate at least 512 characters and allows 32 members of up
/// to 256 + 256 characters; 4096 keeps every realistic list while bounding the work (and the
/// memory the parsed [`TraceState`](opentelemetry::trace::TraceState) holds) per request.
pub const MAX_TRACESTATE_LEN: usize = 4096;

/// Which formats outgoing requests carry; see [`inject`].
///
/// The default is W3C Trace Context only: it is OpenTelemetry's default propagator and what
/// Envoy, Linkerd and most SDKs read. Add B3 when talking to Zipkin-instrumented services.
/// Extraction always accepts every format, whatever is configured here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Propagation {
    w3c: bool,
    b3: Option<B3Encoding>,
}

impl Default for Propagation {
    fn default() -> Self {
        Self {
            w3c: true,
            b3: None,
        }
    }
}

impl Propagation {
    /// Whether to write `traceparent` and `tracestate` (default: yes).
    #[must_use]
    pub const fn w3c(mut self, enabled: bool) -> Self {
        self.w3c = enabled;
        self
    }

    /// Whether and how to write B3 (default: not at all).
    #[must_use]
    pub const fn b3(mut self, encoding: Option<B3Encoding>) -> Self {
        self.b3 = encoding;
        self
    }

    /// Whether W3C headers are written.
    pub const fn w3c_enabled(&self) -> bool {
        self.w3c
    }

    /// The B3 form written, if any.
    pub const fn b3_encoding(&self) -> Option<B3Encoding> {
        self.b3
    }
}

/// The two B3 header forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum B3Encoding {
    /// One `b3: {traceid}-{spanid}-{sampled}` header.
    Single,
    /// `X-B3-TraceId`, `X-B3-SpanId` and `X-B3-Sampled`.
    Multi,
}
