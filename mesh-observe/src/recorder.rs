//! [`RequestRecorder`]: ends a request's span and records its metrics, exactly once.

use std::fmt;
use std::sync::Arc;

use http::{Method, StatusCode, Version};
use mesh_core::classify::{Completion, OnCompletion, Outcome};
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use tokio::time::Instant;

pub(crate) use crate::metrics::MetricAttributes;
use crate::metrics::RequestInstruments;
use crate::tracer::MeshSpan;

/// Ends the span and records the duration of one request when its response body ends; the
/// [`OnCompletion`] callback the trace layers hand to mesh-core's `observe_response`.
///
/// It is public only so that [`TracedBody`](crate::TracedBody) can be named. It runs exactly once:
/// at the end of the body (trailers included, so a gRPC status in trailers decides the span
/// status), when the inner service fails, or when it is dropped unfinished — a response future or
/// body dropped early is recorded with `error.type = "cancelled"`.
pub struct RequestRecorder {
    state: Option<State>,
}

struct State {
    span: RequestSpan,
    recording: bool,
    start: Instant,
    instruments: Arc<RequestInstruments>,
    attributes: MetricAttributes,
    status: Option<StatusCode>,
    /// `network.protocol.version` came with the response (client side), so the span gets it at
    /// the end rather than from the request.
    protocol_from_response: bool,
}

impl fmt::Debug for RequestRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestRecorder")
            .field("finished", &self.state.is_none())
            .finish()
    }
}

/// Where a request's span lives: in the OpenTelemetry context the server side makes current while
/// the handler runs, or, on the client side, where nothing needs the span as a context, held
/// alone (which spares the context's shared allocation for it).
// Inline on purpose (see `MeshSpan`).
#[allow(clippy::large_enum_variant)]
pub(crate) enum RequestSpan {
    /// The span of this context.
    Context(Context),
    /// The span itself.
    Span(MeshSpan),
}

impl RequestSpan {
    fn is_recording(&self) -> bool {
        match self {
            Self::Context(cx) => cx.span().is_recording(),
            Self::Span(span) => span.is_recording(),
        }
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        match self {
            Self::Context(cx) => cx.span().set_attribute(attribute),
            Self::Span(span) => span.set_attribute(attribute),
        }
    }

    fn set_status(&mut self, status: Status) {
        match self {
            Self::Context(cx) => cx.span().set_status(status),
            Self::Span(span) => span.set_status(status),
        }
    }

    fn end(&mut self) {
        match self {
            Self::Context(cx) => cx.span().end(),
            Self::Span(span) => span.end(),
        }
    }
}

/// How a request ended, as far as the recorder is concerned.
pub(crate) enum Ended {
    Outcome(Outcome),
    Cancelled,
}

impl RequestRecorder {
    /// Starts timing a request whose span is `span`; counts it as active.
    pub(crate) fn start(
        span: RequestSpan,
        instruments: Arc<RequestInstruments>,
        attributes: MetricAttributes,
    ) -> Self {
        let recording = span.is_recording();
        instruments
            .active
            .add(1, attributes.method, attributes.scheme);
        Self {
            state: Some(State {
                span,
                recording,
                start: mesh_core::time::now(),
                instruments,
                attributes,
                status: None,
                protocol_from_response: false,
            }),
        }
    }

    /// Notes the response status, once the head has arrived.
    pub(crate) fn set_status(&mut self, status: StatusCode) {
        if let Some(state) = &mut self.state {
            state.status = Some(status);
        }
    }

    /// Notes the HTTP version of the response: on the client side the version the connection
    /// actually used (a request built as HTTP/1.1 may go out over HTTP/2), which replaces the
    /// request's as `network.protocol.version`.
    pub(crate) fn set_response_version(&mut self, version: Version) {
        if let Some(state) = &mut self.state {
            state.attributes.protocol = protocol_version(version);
            state.protocol_from_response = true;
        }
    }

    pub(crate) fn finish(&mut self, ended: Ended) {
        let Some(mut state) = self.state.take() else {
            return;
        };
        let elapsed = mesh_core::time::now()
            .saturating_duration_since(state.start)
            .as_secs_f64();
        let error_type = match &ended {
            Ended::Outcome(Outcome::Success) => None,
            Ended::Outcome(outcome) => Some(outcome.kind()),
            Ended::Cancelled => Some("cancelled"),
        };
        state
            .instruments
            .duration
            .record(elapsed, &state.attributes, state.status, error_type);
        state
            .instruments
            .active
            .add(-1, state.attributes.method, state.attributes.scheme);

        let span = &mut state.span;
        if state.recording {
            if let Some(status) = state.status {
                let code = i64::from(status.as_u16());
                span.set_attribute(KeyValue::new("http.response.status_code", code));
            }
            if state.protocol_from_response
                && let Some(protocol) = state.attributes.protocol
            {
                span.set_attribute(KeyValue::new("network.protocol.version", protocol));
            }
            if let Some(error_type) = error_type {
                span.set_attribute(KeyValue::new("error.type", error_type));
            }
            if let Ended::Outcome(Outcome::Failure(class)) = &ended {
                if let Some(code) = class.grpc_code() {
                    let code = i64::from(code.value());
                    span.set_attribute(KeyValue::new("rpc.grpc.status_code", code));
                }
                span.set_status(Status::error(class.kind()));
            }
        }
        span.end();
    }
}

impl OnCompletion for RequestRecorder {
    fn on_completion(mut self, completion: Completion) {
        self.finish(match completion {
            Completion::Finished(outcome) => Ended::Outcome(outcome),
            Completion::Cancelled => Ended::Cancelled,
        });
    }
}

impl Drop for RequestRecorder {
    fn drop(&mut self) {
        self.finish(Ended::Cancelled);
    }
}

/// The method as the semantic conventions name it: one of the nine standard methods, else
/// `_OTHER` (so a client cannot create metric series by inventing methods).
pub(crate) fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// `network.protocol.version` for an HTTP version.
pub(crate) fn protocol_version(version: Version) -> Option<&'static str> {
    match version {
        Version::HTTP_09 => Some("0.9"),
        Version::HTTP_10 => Some("1.0"),
        Version::HTTP_11 => Some("1.1"),
        Version::HTTP_2 => Some("2"),
        Version::HTTP_3 => Some("3"),
        _ => None,
    }
}

/// `url.scheme` when the URI says it.
pub(crate) fn scheme_name(uri: &http::Uri) -> Option<&'static str> {
    match uri.scheme_str() {
        Some("http") => Some("http"),
        Some("https") => Some("https"),
        _ => None,
    }
}
