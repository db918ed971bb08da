//! Raw HTTP/2 frames for the attack tests: a real client library refuses to send what an attacker
//! sends (a `RST_STREAM` right behind each `HEADERS`, endless `CONTINUATION`s, an HPACK block
//! that decodes to megabytes), so the frames are written byte by byte (RFC 9113 §4.1, §6) and the
//! header blocks with a hand-rolled HPACK encoder that never Huffman-codes (RFC 7541 §5, §6).
//! Frames the server sends back are read and classified; their header blocks are not decoded.

use tokio::io::{AsyncRead, AsyncReadExt};

/// The client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const CONTINUATION: u8 = 0x9;

/// Flags: `END_STREAM` on `HEADERS`, `ACK` on `SETTINGS` / `PING` (both bit 0); `END_HEADERS`.
pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;

/// Error codes (RFC 9113 §7).
pub(crate) const CANCEL: u32 = 0x8;
pub(crate) const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame: the 9-byte header (24-bit length, type, flags, 31-bit stream id), then `payload`.
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame payload fits 24 bits");
    assert!(len < 1 << 24, "frame payload fits 24 bits");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A `SETTINGS` frame with `(identifier, value)` pairs.
pub(crate) fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(6 * pairs.len());
    for (id, value) in pairs {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

/// The preface, an empty `SETTINGS` and the `ACK` of the server's (a client that follows the
/// handshake, so the server has no reason to complain about it).
pub(crate) fn handshake() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(settings(&[]));
    out.extend(frame(SETTINGS, ACK, 0, &[]));
    out
}

/// A `PING` carrying `data`.
pub(crate) fn ping(data: [u8; 8]) -> Vec<u8> {
    frame(PING, 0, 0, &data)
}

/// A `RST_STREAM` of `stream` with `code`.
pub(crate) fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// An HPACK integer with an `n`-bit prefix, the prefix byte's other bits set to `flags`
/// (RFC 7541 §5.1).
pub(crate) fn hpack_int(out: &mut Vec<u8>, n: u8, flags: u8, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// A raw (not Huffman-coded) HPACK string literal.
fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 7, 0, s.len());
    out.extend_from_slice(s);
}

/// A literal header field without indexing, with a literal name (RFC 7541 §6.2.2): it leaves the
/// decoder's dynamic table as it was.
pub(crate) fn literal(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x00);
    hpack_str(out, name.as_bytes());
    hpack_str(out, value);
}

/// A literal header field with incremental indexing, with a literal name (RFC 7541 §6.2.1): the
/// decoder adds it to its dynamic table, at index 62 while it is the newest entry.
pub(crate) fn literal_indexed(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x40);
    hpack_str(out, name.as_bytes());
    hpack_str(out, value);
}

/// An indexed header field (RFC 7541 §6.1): one or two bytes that stand for a whole table entry.
pub(crate) fn indexed(out: &mut Vec<u8>, index: usize) {
    hpack_int(out, 7, 0x80, index);
}

/// The header block of a `GET http://<authority><path>` request, every field a literal.
pub(crate) fn get_block(authority: &str, path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    literal(&mut block, ":method", b"GET");
    literal(&mut block, ":scheme", b"http");
    literal(&mut block, ":path", path.as_bytes());
    literal(&mut block, ":authority", authority.as_bytes());
    block
}

/// A frame the server sent.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    /// The error code of a `GOAWAY` (after the last stream id).
    pub(crate) fn goaway_code(&self) -> Option<u32> {
        (self.kind == GOAWAY && self.payload.len() >= 8)
            .then(|| u32::from_be_bytes(self.payload[4..8].try_into().unwrap()))
    }
}

/// The next frame, or `None` once the connection is closed or reset (a frame cut short counts
/// as the end).
pub(crate) async fn read_frame(io: &mut (impl AsyncRead + Unpin)) -> Option<Frame> {
    let mut head = [0u8; 9];
    io.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await.ok()?;
    Some(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff,
        payload,
    })
}

/// What the server sent until it closed the connection: every frame, in order.
pub(crate) async fn read_until_closed(io: &mut (impl AsyncRead + Unpin)) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(frame) = read_frame(io).await {
        frames.push(frame);
    }
    frames
}

/// The error code of the first `GOAWAY` among `frames`.
pub(crate) fn goaway_code(frames: &[Frame]) -> Option<u32> {
    frames.iter().find_map(Frame::goaway_code)
}
