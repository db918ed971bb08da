//! The gRPC health checking protocol (`grpc.health.v1.Health/Check`), encoded by hand.
//!
//! Both messages are tiny, so a protobuf dependency would cost more than these few lines:
//!
//! ```text
//! message HealthCheckRequest  { string service = 1; }
//! message HealthCheckResponse { enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2;
//!                                                    SERVICE_UNKNOWN = 3; } ServingStatus status = 1; }
//! ```
//!
//! Each message travels in a gRPC length-prefixed frame: one flag byte (1 = compressed), then the
//! message length as a big-endian `u32`, then the message.

use bytes::{BufMut, Bytes, BytesMut};

/// The request path of the health check method.
pub(crate) const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// `ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// One framed, uncompressed `HealthCheckRequest` for `service` (empty = the whole server).
pub(crate) fn encode_request(service: &str) -> Bytes {
    let mut message = BytesMut::with_capacity(service.len() + 6);
    if !service.is_empty() {
        // Field 1, wire type 2 (length-delimited); proto3 omits an empty string.
        message.put_u8(0x0a);
        put_varint(&mut message, service.len() as u64);
        message.put_slice(service.as_bytes());
    }
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    // Service names are bounded by config validation, far below u32::MAX.
    frame.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    frame.put_slice(&message);
    frame.freeze()
}

/// Why a response body did not say `SERVING`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `SERVING`.
    Serving,
    /// A well-formed response with another status (`NOT_SERVING` = 2, `SERVICE_UNKNOWN` = 3,
    /// `UNKNOWN` = 0 or absent, or a value this code does not know).
    NotServing(u64),
    /// Not one uncompressed frame holding a valid `HealthCheckResponse`.
    Malformed(&'static str),
}

/// Reads the response body: exactly one uncompressed frame holding a `HealthCheckResponse`.
pub(crate) fn decode_response(body: &[u8]) -> Verdict {
    let Some((&flag, rest)) = body.split_first() else {
        return Verdict::Malformed("empty body");
    };
    if flag != 0 {
        // The request advertised no `grpc-accept-encoding`, so a compressed reply is a peer bug.
        return Verdict::Malformed("compressed or unknown frame flag");
    }
    let Some((len, message)) = rest.split_first_chunk::<4>() else {
        return Verdict::Malformed("truncated frame header");
    };
    if u32::from_be_bytes(*len) as usize != message.len() {
        return Verdict::Malformed("frame length does not match the body");
    }
    match serving_status(message) {
        Ok(SERVING) => Verdict::Serving,
        Ok(status) => Verdict::NotServing(status),
        Err(reason) => Verdict::Malformed(reason),
    }
}

/// Field 1 of a `HealthCheckResponse` (0 when absent, as proto3 omits defaults); unknown fields
/// are skipped as protobuf requires.
fn serving_status(mut message: &[u8]) -> Result<u64, &'static str> {
    let mut status = 0;
    while !message.is_empty() {
        let key = take_varint(&mut message)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = take_varint(&mut message)?,
            (1, _) => return Err("field `status` is not a varint"),
            (_, 0) => {
                take_varint(&mut message)?;
            }
            (_, 1) => skip(&mut message, 8)?,
            (_, 2) => {
                let len = take_varint(&mut message)?;
                skip(
                    &mut message,
                    usize::try_from(len).map_err(|_| "field too long")?,
                )?;
            }
            (_, 5) => skip(&mut message, 4)?,
            _ => return Err("unsupported protobuf wire type"),
        }
    }
    Ok(status)
}

fn put_varint(buf: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

fn take_varint(buf: &mut &[u8]) -> Result<u64, &'static str> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some((&byte, rest)) = buf.split_first() else {
            return Err("truncated varint");
        };
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes")
}

fn skip(buf: &mut &[u8], len: usize) -> Result<(), &'static str> {
    match buf.get(len..) {
        Some(rest) => {
            *buf = rest;
            Ok(())
        }
        None => Err("truncated field"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(message: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    #[test]
    fn request_encoding() {
        assert_eq!(&encode_request("")[..], [0, 0, 0, 0, 0]);
        assert_eq!(
            &encode_request("ab")[..],
            [0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']
        );
        // 200 bytes needs a two-byte varint length: 200 = 0xc8 → [0xc8, 0x01].
        let long = "x".repeat(200);
        let encoded = encode_request(&long);
        assert_eq!(&encoded[..8], [0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01]);
        assert_eq!(encoded.len(), 5 + 203);
    }

    #[test]
    fn response_decoding_table() {
        let cases: &[(&[u8], Verdict)] = &[
            (&frame(&[0x08, 1]), Verdict::Serving),
            (&frame(&[0x08, 2]), Verdict::NotServing(2)),
            (&frame(&[0x08, 3]), Verdict::NotServing(3)),
            (&frame(&[]), Verdict::NotServing(0)),
            // An unknown string field before the status is skipped.
            (&frame(&[0x12, 2, b'h', b'i', 0x08, 1]), Verdict::Serving),
            // Fixed 64- and 32-bit unknown fields are skipped too.
            (
                &frame(&[0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0x25, 0, 0, 0, 0, 0x08, 1]),
                Verdict::Serving,
            ),
            // A later value of the same field wins, as in protobuf.
            (&frame(&[0x08, 1, 0x08, 2]), Verdict::NotServing(2)),
            (&[], Verdict::Malformed("empty body")),
            (
                &[1, 0, 0, 0, 2, 0x08, 1],
                Verdict::Malformed("compressed or unknown frame flag"),
            ),
            (&[0, 0, 0], Verdict::Malformed("truncated frame header")),
            (
                &[0, 0, 0, 0, 3, 0x08, 1],
                Verdict::Malformed("frame length does not match the body"),
            ),
            (&frame(&[0x08]), Verdict::Malformed("truncated varint")),
            (
                &frame(&[0x08, 0xff]),
                Verdict::Malformed("truncated varint"),
            ),
            (
                &frame(&[0x0a, 1, 1]),
                Verdict::Malformed("field `status` is not a varint"),
            ),
            (&frame(&[0x12, 5, 1]), Verdict::Malformed("truncated field")),
            (
                &frame(&[0x13]),
                Verdict::Malformed("unsupported protobuf wire type"),
            ),
            (
                &frame(&[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ]),
                Verdict::Malformed("varint longer than 10 bytes"),
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(decode_response(body), *expected, "body {body:?}");
        }
    }
}
