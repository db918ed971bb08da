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

/// Writes `value`'s low `out.len()` hex digits into `out`, lowercase, most significant first.
pub(crate) fn write_lower_hex(value: u128, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut rest = value;
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(rest & 0xf) as usize];
        rest >>= 4;
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
        write_lower_hex(0xab, &mut out);
        assert_eq!(&out, b"00ab");
    }
}
