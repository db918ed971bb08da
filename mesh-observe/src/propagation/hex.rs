//! Strict lowercase hexadecimal, as both W3C Trace Context and B3 require.

/// Parses exactly `bytes` as lowercase hex digits into an integer; `None` for any other byte, an
/// empty input or more than 32 digits. Upper case is rejected on purpose: W3C `traceparent` and B3
/// both specify lowercase, and accepting `AB` would let two spellings of one id travel side by side.
pub(crate) fn parse_lower_hex(bytes: &[u8]) -> Option<u128> {
    if bytes.is_empty() || bytes.len() > 32 {
        return None;
    }
    let mut value: u128 = 0;
    for &byte in bytes {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            _ => return None,
        };
        value = (value << 4) | u128::from(digit);
    }
    Some(value)
}

/// The two lowercase hex digits of every byte value, so that writing an id costs one table load
/// and one two-byte store per byte (a trace id is written into every outgoing request).
const PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    pairs
};

/// Writes `bytes` into `out` as lowercase hex, most significant first: two digits per byte, so
/// `out` is twice as long as `bytes` (extra room in `out` is left as it is).
pub(crate) fn write_lower_hex(bytes: &[u8], out: &mut [u8]) {
    debug_assert!(out.len() >= 2 * bytes.len());
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&PAIRS[usize::from(*byte)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lowercase_only() {
        assert_eq!(parse_lower_hex(b"0a"), Some(10));
        assert_eq!(parse_lower_hex(b"0A"), None);
        assert_eq!(parse_lower_hex(b""), None);
        assert_eq!(parse_lower_hex(b"g0"), None);
        assert_eq!(parse_lower_hex(&[b'f'; 32]), Some(u128::MAX));
        assert_eq!(parse_lower_hex(&[b'f'; 33]), None);
    }

    #[test]
    fn writes_fixed_width() {
        let mut out = [0u8; 4];
        write_lower_hex(&[0x0a, 0xbf], &mut out);
        assert_eq!(&out, b"0abf");
        let mut all = [0u8; 512];
        let bytes: Vec<u8> = (0..=255).collect();
        write_lower_hex(&bytes, &mut all);
        for (byte, pair) in bytes.iter().zip(all.chunks_exact(2)) {
            assert_eq!(pair, format!("{byte:02x}").as_bytes());
        }
    }
}
