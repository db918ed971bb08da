//! W3C Trace Context: `traceparent` and `tracestate` (<https://www.w3.org/TR/trace-context/>).

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

use super::hex::{parse_lower_hex, write_lower_hex};
use super::{MAX_HEADER_LEN, MAX_TRACESTATE_LEN, RejectReason};

/// `traceparent` for version `00`: `vv-<32 hex>-<16 hex>-ff`, 55 bytes.
pub(crate) const TRACEPARENT_LEN: usize = 55;
/// W3C Trace Context: "There can be a maximum of 32 list-members in a list."
const MAX_TRACESTATE_MEMBERS: usize = 32;
/// W3C Trace Context: keys and values are at most 256 characters.
const MAX_TRACESTATE_FIELD: usize = 256;

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
    write_lower_hex(
        u128::from_be_bytes(span.trace_id().to_bytes()),
        &mut out[3..35],
    );
    let span_id = u64::from_be_bytes(span.span_id().to_bytes());
    write_lower_hex(u128::from(span_id), &mut out[36..52]);
    let flags = if span.is_sampled() { b"01" } else { b"00" };
    out[53..55].copy_from_slice(flags);
    out
}

/// Parses every `tracestate` header line as one combined list, as the specification requires.
///
/// Empty members (`a=1,,b=2`) and optional white space around members are allowed. Everything
/// else is checked: total length, at most 32 members, key and value grammar, no duplicate key.
/// One bad member invalidates the whole list: a partial list could drop a vendor's entry silently.
pub(crate) fn parse_tracestate<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
) -> Result<TraceState, RejectReason> {
    let mut members: Vec<(&str, &str)> = Vec::new();
    let mut total = 0usize;
    for line in lines {
        total += line.len() + 1;
        if total > MAX_TRACESTATE_LEN + 1 {
            return Err(RejectReason::Oversized);
        }
        let text = std::str::from_utf8(line).map_err(|_| RejectReason::Malformed)?;
        for member in text.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            let (key, value) = member.split_once('=').ok_or(RejectReason::Malformed)?;
            if !valid_key(key.as_bytes()) || !valid_value(value.as_bytes()) {
                return Err(RejectReason::Malformed);
            }
            if members.iter().any(|(seen, _)| *seen == key) {
                return Err(RejectReason::Duplicate);
            }
            if members.len() == MAX_TRACESTATE_MEMBERS {
                return Err(RejectReason::TooManyMembers);
            }
            members.push((key, value));
        }
    }
    if members.is_empty() {
        return Ok(TraceState::NONE);
    }
    // The grammar checked above is stricter than `TraceState`'s own, so this does not fail.
    TraceState::from_key_value(members).map_err(|_| RejectReason::Malformed)
}

/// `key = simple-key / multi-tenant-key` (W3C Trace Context, section 3.3.1.3.1).
fn valid_key(key: &[u8]) -> bool {
    let key_char = |b: &u8| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/');
    match key.iter().position(|&b| b == b'@') {
        None => {
            // simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
            (1..=MAX_TRACESTATE_FIELD).contains(&key.len())
                && key[0].is_ascii_lowercase()
                && key.iter().all(key_char)
        }
        Some(at) => {
            // tenant-id = ( lcalpha / DIGIT ) 0*240( ... ); system-id = lcalpha 0*13( ... )
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            (1..=241).contains(&tenant.len())
                && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
                && tenant.iter().all(key_char)
                && (1..=14).contains(&system.len())
                && system[0].is_ascii_lowercase()
                && system.iter().all(key_char)
        }
    }
}

/// `value = 0*255(chr) nblk-chr`, `chr = %x20 / nblk-chr`, `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`.
fn valid_value(value: &[u8]) -> bool {
    let nblk = |b: u8| matches!(b, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    match value.last() {
        Some(&last) => {
            value.len() <= MAX_TRACESTATE_FIELD
                && nblk(last)
                && value.iter().all(|&b| b == b' ' || nblk(b))
        }
        None => false,
    }
}
