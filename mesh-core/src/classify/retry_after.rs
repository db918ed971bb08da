//! The `Retry-After` response header (RFC 9110 §10.2.3).

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::RETRY_AFTER;

/// How long a server asked the client to wait, from a `Retry-After` header (RFC 9110 §10.2.3).
///
/// The header has two forms, kept apart because a date only becomes a delay once "now" is known:
///
/// - `delta-seconds` (`Retry-After: 120`), a non-negative integer → [`RetryAfter::Delay`];
/// - an HTTP-date (`Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`) in the IMF-fixdate form or the
///   obsolete RFC 850 and asctime forms → [`RetryAfter::Date`].
///
/// Parsing choices:
///
/// - Whitespace around the value is ignored (it is not part of a field value, RFC 9110 §5.5).
/// - Delays saturate at [`RetryAfter::MAX_DELAY`] (2³¹ seconds, the bound RFC 9111 §1.2.2 sets for
///   delta-seconds) instead of overflowing; consumers apply their own, much smaller, caps.
/// - Anything else is malformed: a sign (`-5`, `+5`), a fraction (`1.5`), an empty value, non-ASCII
///   bytes, an unparseable date, or the field appearing more than once (it is a singleton field).
///   A malformed header is treated as **absent**, so a 503 with a malformed `Retry-After` is a plain
///   server error, and a 429 with one is "overloaded" with no known delay.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use http::HeaderValue;
/// use mesh_core::classify::RetryAfter;
///
/// let delay = RetryAfter::parse(b"120").unwrap();
/// assert_eq!(delay, RetryAfter::Delay(Duration::from_secs(120)));
///
/// let date = RetryAfter::parse(b"Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
/// assert_eq!(date.delay_from(now), Duration::from_secs(30));
///
/// assert_eq!(RetryAfter::parse(b"-1"), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryAfter {
    /// Wait this long after the response was received (`delta-seconds`).
    Delay(Duration),
    /// Wait until this wall-clock time (HTTP-date).
    Date(SystemTime),
}

impl RetryAfter {
    /// The largest delay a `RetryAfter` reports: 2³¹ seconds (about 68 years).
    pub const MAX_DELAY: Duration = Duration::from_secs(1 << 31);

    /// Parses one header value; `None` when it is malformed (see the type docs).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let value = bytes.trim_ascii();
        if value.is_empty() {
            return None;
        }
        if value.iter().all(u8::is_ascii_digit) {
            let max = Self::MAX_DELAY.as_secs();
            let secs = value.iter().fold(0u64, |acc, &b| {
                acc.saturating_mul(10)
                    .saturating_add(u64::from(b - b'0'))
                    .min(max)
            });
            return Some(Self::Delay(Duration::from_secs(secs)));
        }
        // httpdate accepts IMF-fixdate, RFC 850 and asctime, and rejects non-ASCII input.
        let text = std::str::from_utf8(value).ok()?;
        httpdate::parse_http_date(text).ok().map(Self::Date)
    }

    /// The `Retry-After` in `headers`, when present exactly once and well-formed.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(RETRY_AFTER).iter();
        let first = values.next()?;
        if values.next().is_some() {
            return None;
        }
        Self::parse(first.as_bytes())
    }

    /// How long to wait, counted from `now` (the time the response was received, for the delay
    /// form). A date in the past gives zero; the result never exceeds [`RetryAfter::MAX_DELAY`].
    pub fn delay_from(&self, now: SystemTime) -> Duration {
        match *self {
            Self::Delay(delay) => delay.min(Self::MAX_DELAY),
            Self::Date(at) => at
                .duration_since(now)
                .unwrap_or(Duration::ZERO)
                .min(Self::MAX_DELAY),
        }
    }
}
