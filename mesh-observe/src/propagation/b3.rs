//! B3 propagation, single (`b3`) and multi-header (`X-B3-*`) forms
//! (<https://github.com/openzipkin/b3-propagation>).

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

use super::hex::{parse_lower_hex, write_lower_hex};
use super::{MAX_HEADER_LEN, RejectReason};

/// Parses a B3 trace id: 16 or 32 lowercase hex digits, not all zero. A 64-bit id is widened
/// with leading zeros, which is how W3C and OpenTelemetry read it.
fn trace_id(bytes: &[u8]) -> Result<TraceId, RejectReason> {
    if bytes.len() != 16 && bytes.len() != 32 {
        return Err(RejectReason::Malformed);
    }
    match parse_lower_hex(bytes) {
        Some(0) | None => Err(RejectReason::Malformed),
        Some(id) => Ok(TraceId::from(id)),
    }
}

/// Parses a B3 span id: exactly 16 lowercase hex digits, not all zero.
fn span_id(bytes: &[u8]) -> Result<SpanId, RejectReason> {
    if bytes.len() != 16 {
        return Err(RejectReason::Malformed);
    }
    match parse_lower_hex(bytes) {
        Some(0) | None => Err(RejectReason::Malformed),
        // 16 hex digits fit in 64 bits.
        Some(id) => Ok(SpanId::from(id as u64)),
    }
}

fn remote(trace_id: TraceId, span_id: SpanId, sampled: bool) -> SpanContext {
    let flags = TraceFlags::default().with_sampled(sampled);
    SpanContext::new(trace_id, span_id, flags, true, TraceState::NONE)
}

/// Parses the single `b3` header: `{traceid}-{spanid}[-{sampled}[-{parentspanid}]]`, or a lone
/// sampling state (`0`, `1`, `d`), which carries no ids and yields `Ok(None)`.
///
/// The sampling state is `1` (sampled), `d` (debug, read as sampled) or `0`; when absent the
/// decision is deferred to the receiver and is read as *not sampled*, since an OpenTelemetry span
/// context has no "deferred" state and a parent-based sampler then decides locally.
pub(crate) fn parse_single(value: &[u8]) -> Result<Option<SpanContext>, RejectReason> {
    if value.len() > MAX_HEADER_LEN {
        return Err(RejectReason::Oversized);
    }
    if matches!(value, b"0" | b"1" | b"d") {
        return Ok(None);
    }
    let mut fields = value.split(|&b| b == b'-');
    let trace = trace_id(fields.next().unwrap_or_default())?;
    let span = span_id(fields.next().ok_or(RejectReason::Malformed)?)?;
    let sampled = match fields.next() {
        None => false,
        Some(b"1" | b"d") => true,
        Some(b"0") => false,
        Some(_) => return Err(RejectReason::Malformed),
    };
    if let Some(parent) = fields.next() {
        span_id(parent)?;
    }
    if fields.next().is_some() {
        return Err(RejectReason::Malformed);
    }
    Ok(Some(remote(trace, span, sampled)))
}

/// The multi-header form's values, each `None` when absent.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MultiHeaders<'a> {
    pub(crate) trace_id: Option<&'a [u8]>,
    pub(crate) span_id: Option<&'a [u8]>,
    pub(crate) sampled: Option<&'a [u8]>,
    pub(crate) flags: Option<&'a [u8]>,
}

/// Parses the multi-header form. Trace and span ids come together or not at all; a sampling
/// state alone yields `Ok(None)`. `X-B3-Sampled` is `1` or `0`, and `true` / `false` are accepted
/// too, as the B3 specification asks of receivers for old senders. `X-B3-Flags: 1` (debug) means
/// sampled; other flag values are ignored, as the specification allows.
pub(crate) fn parse_multi(headers: MultiHeaders<'_>) -> Result<Option<SpanContext>, RejectReason> {
    let fields = [
        headers.trace_id,
        headers.span_id,
        headers.sampled,
        headers.flags,
    ];
    if fields.iter().flatten().any(|v| v.len() > MAX_HEADER_LEN) {
        return Err(RejectReason::Oversized);
    }
    let sampled = match headers.sampled {
        None => false,
        Some(b"1" | b"true") => true,
        Some(b"0" | b"false") => false,
        Some(_) => return Err(RejectReason::Malformed),
    };
    let debug = headers.flags == Some(b"1");
    match (headers.trace_id, headers.span_id) {
        (None, None) => Ok(None),
        (Some(trace), Some(span)) => Ok(Some(remote(
            trace_id(trace)?,
            span_id(span)?,
            sampled || debug,
        ))),
        _ => Err(RejectReason::Malformed),
    }
}

/// The single `b3` header for `span`: `{traceid}-{spanid}-{1|0}` with a 128-bit trace id.
pub(crate) fn encode_single(span: &SpanContext) -> [u8; 51] {
    let mut out = [b'-'; 51];
    let (trace, id) = encode_ids(span);
    out[..32].copy_from_slice(&trace);
    out[33..49].copy_from_slice(&id);
    out[50] = if span.is_sampled() { b'1' } else { b'0' };
    out
}

/// The hex trace id (32 digits) and span id (16 digits) of `span`.
pub(crate) fn encode_ids(span: &SpanContext) -> ([u8; 32], [u8; 16]) {
    let mut trace = [0u8; 32];
    write_lower_hex(&span.trace_id().to_bytes(), &mut trace);
    let mut id = [0u8; 16];
    write_lower_hex(&span.span_id().to_bytes(), &mut id);
    (trace, id)
}
