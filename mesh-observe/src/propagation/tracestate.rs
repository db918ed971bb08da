//! W3C Trace Context `tracestate`: the strict grammar, and the list carried beside the span when
//! OpenTelemetry's [`TraceState`] cannot hold it.
//!
//! Why a list of our own: opentelemetry 0.33's `TraceState` constructor checks keys with a grammar
//! of its own, which refuses a multi-tenant key whose system id has the 14 characters the
//! specification allows (an off-by-one), and then refuses the whole list. A list this module
//! accepted must still reach the next hop, so when the SDK refuses it the validated members travel
//! as a [`CarriedTraceState`] value of the OpenTelemetry [`Context`](opentelemetry::Context) next
//! to the remote span context, and [`header_for`] writes them on the way out.

use opentelemetry::trace::{SpanContext, TraceId, TraceState};

use super::{MAX_TRACESTATE_LEN, RejectReason};

/// W3C Trace Context: "There can be a maximum of 32 list-members in a list."
const MAX_TRACESTATE_MEMBERS: usize = 32;
/// W3C Trace Context: keys and values are at most 256 characters.
const MAX_TRACESTATE_FIELD: usize = 256;

/// Parses every `tracestate` header line as one combined list, as the specification requires.
///
/// Empty members (`a=1,,b=2`) and optional white space around members are allowed. Everything
/// else is checked: total length, key and value grammar, at most 32 distinct members. One bad
/// member invalidates the whole list: a partial list could drop a vendor's entry silently. A key
/// seen again (in the same line or a later one) is dropped with its value and its first
/// occurrence kept: receivers may either discard such a list or de-duplicate it, and keeping it
/// means one vendor's repeated entry does not erase every other vendor's state.
pub(crate) fn parse_tracestate<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<(&'a str, &'a str)>, RejectReason> {
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
                continue;
            }
            if members.len() == MAX_TRACESTATE_MEMBERS {
                return Err(RejectReason::TooManyMembers);
            }
            members.push((key, value));
        }
    }
    Ok(members)
}

/// The members of a parsed list as OpenTelemetry's [`TraceState`] when it accepts them; else an
/// empty `TraceState` and the members to carry beside the span context of `trace_id`.
pub(crate) fn into_state(
    trace_id: TraceId,
    members: Vec<(&str, &str)>,
) -> (TraceState, Option<CarriedTraceState>) {
    if members.is_empty() {
        return (TraceState::NONE, None);
    }
    match TraceState::from_key_value(members.iter().copied()) {
        Ok(state) => (state, None),
        Err(_) => {
            let members = members
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect();
            (
                TraceState::NONE,
                Some(CarriedTraceState { trace_id, members }),
            )
        }
    }
}

/// An incoming `tracestate` list that this crate validated but OpenTelemetry's [`TraceState`]
/// refused; stored as a value of the OpenTelemetry `Context` that holds the remote parent.
///
/// It belongs to one trace: a span of another trace (a new root started under the same context)
/// does not inherit it.
#[derive(Debug)]
pub(crate) struct CarriedTraceState {
    trace_id: TraceId,
    members: Vec<(String, String)>,
}

/// The `tracestate` value to send for `span` (empty for none).
///
/// Without a carried list this is the span's own trace state. With one of the same trace, the
/// span's `TraceState` started empty (the SDK refused the incoming list), so whatever it holds was
/// added locally, by a sampler for instance; W3C Trace Context puts such members first, so they
/// come first, followed by the carried members whose keys they do not repeat, up to 32 members.
pub(crate) fn header_for(span: &SpanContext, carried: Option<&CarriedTraceState>) -> String {
    let own = span.trace_state();
    let carried = carried.filter(|carried| carried.trace_id == span.trace_id());
    // The usual case (no state of its own, none carried) without walking two empty lists.
    if carried.is_none() && *own == TraceState::NONE {
        return String::new();
    }
    // The span's own state alone is sent whole, as OpenTelemetry would write it.
    let limit = if carried.is_some() {
        MAX_TRACESTATE_MEMBERS
    } else {
        usize::MAX
    };
    let members = || {
        let inherited = carried
            .into_iter()
            .flat_map(|carried| carried.members.iter())
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .filter(|(key, _)| own.get(key).is_none());
        own.into_iter().chain(inherited).take(limit)
    };
    // Measured first, so the value is written into one allocation of its exact size, which the
    // header value then takes over without copying.
    let len = members()
        .map(|(key, value)| key.len() + 1 + value.len() + 1)
        .sum::<usize>()
        .saturating_sub(1);
    let mut out = String::with_capacity(len);
    for (key, value) in members() {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
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
