//! OpenTelemetry [`TextMapPropagator`] implementations over this module's parsers.

use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::{Context, metrics::Meter};

use super::b3::{self, MultiHeaders};
use super::headers::with_state;
use super::tracestate::{self, CarriedTraceState};
use super::w3c;
use super::{B3Encoding, RejectReason, Rejection, TraceHeader};
use crate::metrics::RejectionCounter;

/// W3C Trace Context (`traceparent`, `tracestate`) as an OpenTelemetry [`TextMapPropagator`], with
/// this crate's strict parsing and rejection counting (see the [module docs](super)).
///
/// A valid `tracestate` that OpenTelemetry's `TraceState` refuses is kept in the extracted context
/// and injected again, as [`extract_context`](super::extract_context) and
/// [`inject_context`](super::inject_context) do.
///
/// Register it with `opentelemetry::global::set_text_map_propagator` to use the same rules outside
/// the mesh layers. Rejections are counted in `mesh.trace_context.rejected` on the meter given to
/// [`with_meter`](Self::with_meter), by default `opentelemetry::global::meter("mesh-observe")`.
/// Clones share the counter.
#[derive(Clone, Debug)]
pub struct W3cPropagator {
    rejected: RejectionCounter,
    fields: [String; 2],
}

impl Default for W3cPropagator {
    fn default() -> Self {
        Self::new()
    }
}

impl W3cPropagator {
    /// A propagator counting rejections on the global meter `mesh-observe`.
    pub fn new() -> Self {
        Self::with_meter(&opentelemetry::global::meter("mesh-observe"))
    }

    /// A propagator counting rejections on `meter`.
    pub fn with_meter(meter: &Meter) -> Self {
        Self {
            rejected: RejectionCounter::new(meter),
            fields: ["traceparent".to_owned(), "tracestate".to_owned()],
        }
    }
}

impl TextMapPropagator for W3cPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let span = span.span_context();
        if !span.is_valid() {
            return;
        }
        let traceparent = w3c::encode_traceparent(span);
        injector.set(
            "traceparent",
            String::from_utf8_lossy(&traceparent).into_owned(),
        );
        let state = tracestate::header_for(span, cx.get::<CarriedTraceState>());
        if !state.is_empty() {
            injector.set("tracestate", state);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let reject = |header, reason| self.rejected.record(Rejection::new(header, reason));
        let parsed = match one_value(extractor, "traceparent") {
            None => return cx.clone(),
            Some(found) => found.and_then(|value| w3c::parse_traceparent(value.as_bytes())),
        };
        let parent = match parsed {
            Ok(parent) => parent,
            Err(reason) => {
                reject(TraceHeader::Traceparent, reason);
                return cx.clone();
            }
        };
        let lines = extractor.get_all("tracestate").unwrap_or_default();
        let members = tracestate::parse_tracestate(lines.iter().map(|line| line.as_bytes()))
            .unwrap_or_else(|reason| {
                reject(TraceHeader::Tracestate, reason);
                Vec::new()
            });
        let (state, carried) = tracestate::into_state(parent.trace_id(), members);
        let cx = cx.with_remote_span_context(with_state(parent, state));
        match carried {
            Some(carried) => cx.with_value(carried),
            None => cx,
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

/// B3 as an OpenTelemetry [`TextMapPropagator`]: extracts the single `b3` header, else the
/// `X-B3-*` headers; injects the configured [`B3Encoding`]. Rejections are counted like
/// [`W3cPropagator`]'s. Clones share the counter.
#[derive(Clone, Debug)]
pub struct B3Propagator {
    encoding: B3Encoding,
    rejected: RejectionCounter,
    fields: [String; 5],
}

impl B3Propagator {
    /// A propagator injecting `encoding`, counting rejections on the global meter `mesh-observe`.
    pub fn new(encoding: B3Encoding) -> Self {
        Self::with_meter(encoding, &opentelemetry::global::meter("mesh-observe"))
    }

    /// A propagator injecting `encoding`, counting rejections on `meter`.
    pub fn with_meter(encoding: B3Encoding, meter: &Meter) -> Self {
        Self {
            encoding,
            rejected: RejectionCounter::new(meter),
            fields: [
                "b3".to_owned(),
                "x-b3-traceid".to_owned(),
                "x-b3-spanid".to_owned(),
                "x-b3-sampled".to_owned(),
                "x-b3-flags".to_owned(),
            ],
        }
    }

    fn extract_span(&self, extractor: &dyn Extractor) -> Option<SpanContext> {
        let reject = |header, reason| self.rejected.record(Rejection::new(header, reason));
        if let Some(found) = one_value(extractor, "b3") {
            match found.and_then(|value| b3::parse_single(value.as_bytes())) {
                Ok(Some(parent)) => return Some(parent),
                Ok(None) => {}
                Err(reason) => reject(TraceHeader::B3, reason),
            }
        }
        let mut duplicate = false;
        let mut one = |name| match one_value(extractor, name) {
            Some(Ok(value)) => Some(value.as_bytes()),
            Some(Err(_)) => {
                duplicate = true;
                None
            }
            None => None,
        };
        let multi = MultiHeaders {
            trace_id: one("x-b3-traceid"),
            span_id: one("x-b3-spanid"),
            sampled: one("x-b3-sampled"),
            flags: one("x-b3-flags"),
        };
        if duplicate {
            reject(TraceHeader::B3Multi, RejectReason::Duplicate);
            return None;
        }
        b3::parse_multi(multi).unwrap_or_else(|reason| {
            reject(TraceHeader::B3Multi, reason);
            None
        })
    }
}

impl TextMapPropagator for B3Propagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let span = span.span_context();
        if !span.is_valid() {
            return;
        }
        match self.encoding {
            B3Encoding::Single => {
                let value = b3::encode_single(span);
                injector.set("b3", String::from_utf8_lossy(&value).into_owned());
            }
            B3Encoding::Multi => {
                let (trace, id) = b3::encode_ids(span);
                injector.set("x-b3-traceid", String::from_utf8_lossy(&trace).into_owned());
                injector.set("x-b3-spanid", String::from_utf8_lossy(&id).into_owned());
                let sampled = if span.is_sampled() { "1" } else { "0" };
                injector.set("x-b3-sampled", sampled.to_owned());
            }
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match self.extract_span(extractor) {
            Some(parent) => cx.with_remote_span_context(parent),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

/// A key that must appear at most once: `None` when absent, `Err(Duplicate)` when repeated.
fn one_value<'a>(extractor: &'a dyn Extractor, key: &str) -> Option<Result<&'a str, RejectReason>> {
    let values = extractor.get_all(key)?;
    match values.as_slice() {
        [] => None,
        [value] => Some(Ok(value)),
        _ => Some(Err(RejectReason::Duplicate)),
    }
}
