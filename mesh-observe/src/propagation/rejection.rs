//! Why an incoming trace header was ignored.

use std::fmt;

/// A trace-context header that was present but ignored, and why.
///
/// Extraction never fails a request: a bad header is dropped (the request starts a new trace, or
/// keeps its `traceparent` without the bad `tracestate`) and reported as a `Rejection`, which the
/// layers count in the [`mesh.trace_context.rejected`](crate::metrics::TRACE_CONTEXT_REJECTED)
/// counter with the [`header`](Self::header) and [`reason`](Self::reason) as attributes. Both are
/// closed sets of static names, so the counter's cardinality is bounded (4 × 5 series at most).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rejection {
    header: TraceHeader,
    reason: RejectReason,
}

impl Rejection {
    pub(crate) const fn new(header: TraceHeader, reason: RejectReason) -> Self {
        Self { header, reason }
    }

    /// The header (or header family) that was ignored.
    pub const fn header(&self) -> TraceHeader {
        self.header
    }

    /// Why it was ignored.
    pub const fn reason(&self) -> RejectReason {
        self.reason
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} header ignored: {}", self.header, self.reason)
    }
}

impl std::error::Error for Rejection {}

/// The trace-context headers this crate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TraceHeader {
    /// W3C `traceparent`.
    Traceparent,
    /// W3C `tracestate` (all its header lines, combined).
    Tracestate,
    /// B3 single header `b3`.
    B3,
    /// B3 multi-header form `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`, `X-B3-Flags`.
    B3Multi,
}

impl TraceHeader {
    /// A stable lowercase name, used as the `header` metric attribute: `"traceparent"`,
    /// `"tracestate"`, `"b3"`, `"x-b3"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Traceparent => "traceparent",
            Self::Tracestate => "tracestate",
            Self::B3 => "b3",
            Self::B3Multi => "x-b3",
        }
    }
}

impl fmt::Display for TraceHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a trace header was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// Not in the format the specification defines: wrong field length, upper-case or non-hex
    /// digits, all-zero ids, a bad separator, an invalid `tracestate` key or value, non-ASCII bytes.
    Malformed,
    /// Longer than the bound this crate accepts (see [`MAX_HEADER_LEN`](super::MAX_HEADER_LEN) and
    /// [`MAX_TRACESTATE_LEN`](super::MAX_TRACESTATE_LEN)); not parsed at all.
    Oversized,
    /// A header that must appear once appeared several times (`traceparent`, `b3`, `X-B3-*`). (A
    /// `tracestate` key seen twice is not a rejection: the list is kept with its first occurrence.)
    Duplicate,
    /// `traceparent` version `ff`, which W3C Trace Context forbids.
    InvalidVersion,
    /// A `tracestate` with more than the 32 list members W3C Trace Context allows.
    TooManyMembers,
}

impl RejectReason {
    /// A stable lowercase name, used as the `reason` metric attribute: `"malformed"`,
    /// `"oversized"`, `"duplicate"`, `"invalid_version"`, `"too_many_members"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Oversized => "oversized",
            Self::Duplicate => "duplicate",
            Self::InvalidVersion => "invalid_version",
            Self::TooManyMembers => "too_many_members",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
