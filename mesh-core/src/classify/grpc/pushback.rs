//! The `grpc-retry-pushback-ms` response metadata.

use std::time::Duration;

use http::HeaderMap;

/// The name of the gRPC server pushback metadata (gRPC proposal A6, "gRPC Retry Design").
pub const GRPC_RETRY_PUSHBACK_MS: &str = "grpc-retry-pushback-ms";

/// What a gRPC server asked about retrying, through `grpc-retry-pushback-ms`.
///
/// Per gRPC proposal A6, a non-negative integer is a delay in milliseconds before the next attempt, and
/// any other value (negative, empty, not a number) means "do not retry this call". A server that sends
/// no pushback expresses no opinion, which is represented by the *absence* of a `Pushback`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pushback {
    /// Retry no sooner than this. Values beyond `u64::MAX` milliseconds saturate.
    Delay(Duration),
    /// Do not retry this call.
    DoNotRetry,
}

impl Pushback {
    /// Parses one pushback value. Never fails: a malformed value is [`Pushback::DoNotRetry`].
    ///
    /// Surrounding whitespace is tolerated; a leading `+` is not (A6 asks for an integer as gRPC
    /// implementations print it).
    pub fn parse(bytes: &[u8]) -> Self {
        let digits = bytes.trim_ascii();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            // Covers negative numbers ("-1"), which A6 also reads as "do not retry".
            return Self::DoNotRetry;
        }
        let millis = digits.iter().fold(0u64, |acc, &b| {
            acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        });
        Self::Delay(Duration::from_millis(millis))
    }

    /// The pushback in `headers` (response headers or trailers), if the field is present.
    ///
    /// When the field appears more than once, the first value is used.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers
            .get(GRPC_RETRY_PUSHBACK_MS)
            .map(|value| Self::parse(value.as_bytes()))
    }

    /// The requested delay, or `None` for [`Pushback::DoNotRetry`].
    pub fn delay(self) -> Option<Duration> {
        match self {
            Self::Delay(delay) => Some(delay),
            Self::DoNotRetry => None,
        }
    }
}
