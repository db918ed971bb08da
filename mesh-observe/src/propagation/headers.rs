//! Trace context in and out of an [`http::HeaderMap`], without going through string maps.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceState};

use super::b3::{self, MultiHeaders};
use super::tracestate::{self, CarriedTraceState};
use super::w3c;
use super::{Propagation, RejectReason, Rejection, TraceHeader};

pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub(crate) const B3: HeaderName = HeaderName::from_static("b3");
pub(crate) const X_B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub(crate) const X_B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub(crate) const X_B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub(crate) const X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub(crate) const X_B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// Every header [`inject`] may write; all are removed before injecting so that a forwarded request
/// never carries a stale context in a format that was not re-injected.
const ALL: [HeaderName; 8] = [
    TRACEPARENT,
    TRACESTATE,
    B3,
    X_B3_TRACE_ID,
    X_B3_SPAN_ID,
    X_B3_PARENT_SPAN_ID,
    X_B3_SAMPLED,
    X_B3_FLAGS,
];

/// Reads the remote parent of an incoming request from its headers.
///
/// Formats are tried in order — W3C `traceparent` (with `tracestate`), then B3 `b3`, then the
/// `X-B3-*` headers — and the first valid one wins. Every header that is present but invalid is
/// passed to `on_reject` and otherwise ignored; nothing here fails or panics, whatever the bytes.
/// A rejected `traceparent` drops `tracestate` too (W3C: a new trace starts); a valid
/// `traceparent` with a rejected `tracestate` is kept with an empty trace state. The returned
/// context is marked remote.
///
/// ```
/// use http::HeaderMap;
/// use mesh_observe::propagation::extract;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(
///     "traceparent",
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap(),
/// );
/// headers.insert("tracestate", "congo=t61rcWkgMzE".parse().unwrap());
/// let parent = extract(&headers, |rejection| panic!("{rejection}")).unwrap();
/// assert!(parent.is_sampled() && parent.is_remote());
/// assert_eq!(parent.trace_state().get("congo"), Some("t61rcWkgMzE"));
///
/// headers.insert("traceparent", "00-zz".parse().unwrap());
/// let mut rejected = Vec::new();
/// assert!(extract(&headers, |r| rejected.push(r)).is_none());
/// assert_eq!(rejected[0].header().as_str(), "traceparent");
/// ```
///
/// The returned span context holds the `tracestate` as OpenTelemetry's
/// [`TraceState`](opentelemetry::trace::TraceState), which refuses some valid lists (a
/// multi-tenant key with a 14-character system id, in opentelemetry 0.33); such a list is left out
/// here. To forward every valid list, use [`extract_context`] and [`inject_context`].
pub fn extract(headers: &HeaderMap, on_reject: impl FnMut(Rejection)) -> Option<SpanContext> {
    extract_parts(headers, on_reject).map(|(parent, _)| parent)
}

/// Like [`extract`], but returns an OpenTelemetry [`Context`] holding the remote parent and, when
/// OpenTelemetry's `TraceState` refused a `tracestate` list that is valid by W3C Trace Context,
/// that list too, so that [`inject_context`] (and the client layer) forward it unchanged.
///
/// ```
/// use http::HeaderMap;
/// use mesh_observe::propagation::{Propagation, extract_context, inject_context};
///
/// let mut incoming = HeaderMap::new();
/// incoming.insert(
///     "traceparent",
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap(),
/// );
/// incoming.insert("tracestate", "tenant@vendor-system1=x,congo=1".parse().unwrap());
/// let parent = extract_context(&incoming, |rejection| panic!("{rejection}")).unwrap();
///
/// let mut outgoing = HeaderMap::new();
/// inject_context(&parent, Propagation::default(), &mut outgoing);
/// assert_eq!(outgoing["tracestate"], "tenant@vendor-system1=x,congo=1");
/// ```
pub fn extract_context(headers: &HeaderMap, on_reject: impl FnMut(Rejection)) -> Option<Context> {
    let (parent, carried) = extract_parts(headers, on_reject)?;
    let cx = Context::new().with_remote_span_context(parent);
    Some(match carried {
        Some(carried) => cx.with_value(carried),
        None => cx,
    })
}

/// [`extract`] with the `tracestate` list OpenTelemetry refused, if any.
fn extract_parts(
    headers: &HeaderMap,
    mut on_reject: impl FnMut(Rejection),
) -> Option<(SpanContext, Option<CarriedTraceState>)> {
    // Nothing to read (and nothing to reject) without a trace header; one pass comparing names
    // is cheaper than looking each format's headers up by hash.
    if !headers.keys().any(is_trace_header) {
        return None;
    }
    let mut reject = |header, reason| on_reject(Rejection::new(header, reason));

    match single(headers, &TRACEPARENT).map_parse(w3c::parse_traceparent) {
        None => {}
        Some(Ok(parent)) => {
            let lines = headers
                .get_all(&TRACESTATE)
                .iter()
                .map(HeaderValue::as_bytes);
            let members = tracestate::parse_tracestate(lines).unwrap_or_else(|reason| {
                reject(TraceHeader::Tracestate, reason);
                Vec::new()
            });
            let (state, carried) = tracestate::into_state(parent.trace_id(), members);
            return Some((with_state(parent, state), carried));
        }
        Some(Err(reason)) => reject(TraceHeader::Traceparent, reason),
    }

    match single(headers, &B3).map_parse(b3::parse_single) {
        None | Some(Ok(None)) => {}
        Some(Ok(Some(parent))) => return Some((parent, None)),
        Some(Err(reason)) => reject(TraceHeader::B3, reason),
    }

    let mut duplicate = false;
    let mut one = |name: &HeaderName| match single(headers, name) {
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => {
            duplicate = true;
            None
        }
        None => None,
    };
    let multi = MultiHeaders {
        trace_id: one(&X_B3_TRACE_ID),
        span_id: one(&X_B3_SPAN_ID),
        sampled: one(&X_B3_SAMPLED),
        flags: one(&X_B3_FLAGS),
    };
    if duplicate {
        reject(TraceHeader::B3Multi, RejectReason::Duplicate);
        return None;
    }
    let parent = b3::parse_multi(multi).unwrap_or_else(|reason| {
        reject(TraceHeader::B3Multi, reason);
        None
    });
    parent.map(|parent| (parent, None))
}

/// The value of a header that must appear at most once: `None` when absent, `Some(Err)` when
/// repeated. The `Err` case is mapped by callers to [`RejectReason::Duplicate`].
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<Result<&'a [u8], RejectReason>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    match values.next() {
        None => Some(Ok(first.as_bytes())),
        Some(_) => Some(Err(RejectReason::Duplicate)),
    }
}

/// Runs a parser on a header found exactly once, keeping "absent" and "repeated" apart.
trait ParseFound<T> {
    fn map_parse<U>(
        self,
        parse: impl FnOnce(T) -> Result<U, RejectReason>,
    ) -> Option<Result<U, RejectReason>>;
}

impl<T> ParseFound<T> for Option<Result<T, RejectReason>> {
    fn map_parse<U>(
        self,
        parse: impl FnOnce(T) -> Result<U, RejectReason>,
    ) -> Option<Result<U, RejectReason>> {
        self.map(|found| found.and_then(parse))
    }
}

pub(crate) fn with_state(parent: SpanContext, state: TraceState) -> SpanContext {
    SpanContext::new(
        parent.trace_id(),
        parent.span_id(),
        parent.trace_flags(),
        parent.is_remote(),
        state,
    )
}

/// Writes `span` into `headers` in the formats `propagation` selects, after removing every trace
/// header already there (a forwarded request must not carry its caller's context as well).
///
/// An invalid `span` (no trace, e.g. no provider installed and no incoming parent) writes nothing.
/// Costs: one small allocation per header written (each [`HeaderValue`] owns its bytes), plus the
/// `tracestate` text when the trace state is not empty.
///
/// ```
/// use http::HeaderMap;
/// use mesh_observe::propagation::{B3Encoding, Propagation, inject};
/// use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
///
/// let span = SpanContext::new(
///     TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
///     SpanId::from(0x00f067aa0ba902b7),
///     TraceFlags::SAMPLED,
///     false,
///     TraceState::NONE,
/// );
/// let mut headers = HeaderMap::new();
/// inject(&span, Propagation::default().b3(Some(B3Encoding::Single)), &mut headers);
/// assert_eq!(headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// assert_eq!(headers["b3"], "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1");
/// ```
///
/// The `tracestate` written is the span's [`TraceState`]; [`inject_context`] also writes a list
/// that OpenTelemetry refused on the way in.
pub fn inject(span: &SpanContext, propagation: Propagation, headers: &mut HeaderMap) {
    inject_parts(span, None, propagation, headers);
}

/// Like [`inject`] for the span of `cx`, writing as `tracestate` the list [`extract_context`]
/// carried in `cx` when OpenTelemetry's `TraceState` refused it (after any member added to the
/// span's own trace state, up to 32 members). A carried list is only written for a span of the
/// same trace.
pub fn inject_context(cx: &Context, propagation: Propagation, headers: &mut HeaderMap) {
    let span = cx.span();
    inject_parts(
        span.span_context(),
        cx.get::<CarriedTraceState>(),
        propagation,
        headers,
    );
}

/// [`inject_context`] for a span that is not (yet) in a context: `span` written with the list
/// `parent` carries, exactly as `inject_context` would write `parent.with_span(span)`.
pub(crate) fn inject_child(
    span: &SpanContext,
    parent: &Context,
    propagation: Propagation,
    headers: &mut HeaderMap,
) {
    inject_parts(
        span,
        parent.get::<CarriedTraceState>(),
        propagation,
        headers,
    );
}

fn inject_parts(
    span: &SpanContext,
    carried: Option<&CarriedTraceState>,
    propagation: Propagation,
    headers: &mut HeaderMap,
) {
    // Most requests carry none: one pass comparing names is cheaper than hashing all eight.
    if headers.keys().any(is_trace_header) {
        for name in &ALL {
            headers.remove(name);
        }
    }
    if !span.is_valid() {
        return;
    }
    if propagation.w3c_enabled() {
        let traceparent = w3c::encode_traceparent(span);
        headers.insert(TRACEPARENT, ascii_value(traceparent));
        let state = tracestate::header_for(span, carried);
        if !state.is_empty()
            && let Ok(value) = HeaderValue::try_from(state)
        {
            headers.insert(TRACESTATE, value);
        }
    }
    match propagation.b3_encoding() {
        None => {}
        Some(super::B3Encoding::Single) => {
            headers.insert(B3, ascii_value(b3::encode_single(span)));
        }
        Some(super::B3Encoding::Multi) => {
            let (trace, id) = b3::encode_ids(span);
            headers.insert(X_B3_TRACE_ID, ascii_value(trace));
            headers.insert(X_B3_SPAN_ID, ascii_value(id));
            let sampled = if span.is_sampled() { "1" } else { "0" };
            headers.insert(X_B3_SAMPLED, HeaderValue::from_static(sampled));
        }
    }
}

/// Whether `name` is one of [`ALL`].
fn is_trace_header(name: &HeaderName) -> bool {
    ALL.contains(name)
}

/// A header value from bytes this module produced (hex digits and `-`), always valid.
///
/// The bytes are moved into one reference-counted allocation (`Bytes::from_owner`), so a clone
/// of the header map (mesh-retry copies the head it may retry) shares them. A value made by
/// copying into a `Vec` would allocate once more at its first clone, to become shareable.
fn ascii_value<const N: usize>(bytes: [u8; N]) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(bytes))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_header_names_are_exactly_those_injected() {
        for name in &ALL {
            assert!(is_trace_header(name), "{name}");
        }
        for other in ["host", "b", "b3-", "traceparen", "tracestate2", "x-b3-"] {
            let other = HeaderName::from_static(other);
            assert!(!is_trace_header(&other), "{other}");
        }
    }

    #[test]
    fn a_stale_header_of_every_format_is_removed() {
        let span = SpanContext::new(
            opentelemetry::trace::TraceId::from(1),
            opentelemetry::trace::SpanId::from(2),
            opentelemetry::trace::TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        for name in &ALL {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::HOST, HeaderValue::from_static("a"));
            headers.append(name, HeaderValue::from_static("stale"));
            headers.append(name, HeaderValue::from_static("stale"));
            inject_parts(&span, None, Propagation::default().w3c(false), &mut headers);
            assert_eq!(headers.len(), 1, "{name}: {headers:?}");
        }
    }
}
