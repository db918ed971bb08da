//! The `grpc-timeout` request header: `<1 to 8 digits><unit>` (gRPC over HTTP/2 spec).
//!
//! Units: `H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds,
//! `n` nanoseconds.
//!
//! ```
//! use std::time::Duration;
//! use mesh_retry::timeout::grpc_timeout;
//!
//! assert_eq!(grpc_timeout::parse(b"250m"), Some(Duration::from_millis(250)));
//! assert_eq!(grpc_timeout::parse(b"123456789S"), None); // nine digits
//! assert_eq!(grpc_timeout::encode(Duration::from_millis(1500)), "1500000u");
//! ```

use std::time::Duration;

use http::HeaderValue;

/// The header name.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The largest value the format can carry: 99 999 999 hours.
pub const MAX: Duration = Duration::from_secs(99_999_999 * 3600);

/// Parses one header value; `None` when malformed: no digits, more than eight digits, a sign,
/// whitespace, or a unit other than `H M S m u n`. Never panics.
pub fn parse(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 8 digits, so this fits comfortably in a u64.
    let n = digits
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Encodes `timeout` with the finest unit that fits in eight digits, rounding *down* (the
/// receiver must not believe it has more time than it has). Durations beyond [`MAX`] are capped.
pub fn encode(timeout: Duration) -> HeaderValue {
    const LIMIT: u128 = 100_000_000;
    let nanos = timeout.min(MAX).as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let (value, unit) = units
        .iter()
        .map(|&(scale, unit)| (nanos / scale, unit))
        .find(|&(value, _)| value < LIMIT)
        .unwrap_or((LIMIT - 1, 'H'));
    let text = format!("{value}{unit}");
    HeaderValue::from_str(&text).expect("digits and an ASCII letter are a valid header value")
}
