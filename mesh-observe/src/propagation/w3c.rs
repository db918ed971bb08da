//! W3C Trace Context `traceparent` (<https://www.w3.org/TR/trace-context/>); `tracestate` is in
//! [`tracestate`](super::tracestate).

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

use super::hex::{parse_lower_hex, write_lower_hex};
use super::{MAX_HEADER_LEN, RejectReason};

/// `traceparent` for version `00`: `vv-<32 hex>-<16 hex>-ff`, 55 bytes.
pub(crate) const TRACEPARENT_LEN: usize = 55;

/// Parses one `traceparent` value strictly.
///
/// Version `00` must be exactly 55 bytes. A higher version (other than the forbidden `ff`) is read
/// by its version-00 prefix, as the specification asks, provided the prefix is followed by the end
/// or a `-`. Only the `sampled` flag is kept: the specification asks not to propagate flags one
/// does not understand.
pub(crate) fn parse_traceparent(value: &[u8]) -> Result<SpanContext, RejectReason> {
    if value.len() > MAX_HEADER_LEN {
        return Err(RejectReason::Oversized);
    }
    if value.len() < TRACEPARENT_LEN {
        return Err(RejectReason::Malformed);
    }
    let version = parse_lower_hex(&value[0..2]).ok_or(RejectReason::Malformed)?;
    if version == 0xff {
        return Err(RejectReason::InvalidVersion);
    }
    let exact = value.len() == TRACEPARENT_LEN;
    let versioned_suffix_ok = version > 0 && value.get(TRACEPARENT_LEN) == Some(&b'-');
    if !(exact || versioned_suffix_ok) {
        return Err(RejectReason::Malformed);
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return Err(RejectReason::Malformed);
    }
    let trace_id = parse_lower_hex(&value[3..35]).ok_or(RejectReason::Malformed)?;
    let span_id = parse_lower_hex(&value[36..52]).ok_or(RejectReason::Malformed)?;
    let flags = parse_lower_hex(&value[53..55]).ok_or(RejectReason::Malformed)?;
    if trace_id == 0 || span_id == 0 {
        return Err(RejectReason::Malformed);
    }
    let sampled = flags & 0x01 == 1;
    Ok(SpanContext::new(
        TraceId::from(trace_id),
        // `span_id` came from 16 hex digits, so it fits.
        SpanId::from(span_id as u64),
        TraceFlags::default().with_sampled(sampled),
        true,
        TraceState::NONE,
    ))
}

/// Renders a version-00 `traceparent` for `span` (its trace id, its span id, its sampled flag).
pub(crate) fn encode_traceparent(span: &SpanContext) -> [u8; TRACEPARENT_LEN] {
    let mut out = [b'-'; TRACEPARENT_LEN];
    out[0..2].copy_from_slice(b"00");
    write_lower_hex(&span.trace_id().to_bytes(), &mut out[3..35]);
    write_lower_hex(&span.span_id().to_bytes(), &mut out[36..52]);
    let flags = if span.is_sampled() { b"01" } else { b"00" };
    out[53..55].copy_from_slice(flags);
    out
}
