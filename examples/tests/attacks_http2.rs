//! HTTP/2 attacks on the `mesh-sidecar` binary's outbound listener (h2c, prior knowledge), kept
//! as tests, with the frames written by hand (`support::h2_frames`).
//!
//! What h2 0.4 (under hyper) does, and so what is asserted:
//!
//! - rapid reset (CVE-2023-44487): streams opened and reset before the server accepts them are
//!   counted; past 20 the connection gets `GOAWAY(ENHANCE_YOUR_CALM)`;
//! - `CONTINUATION` flood (CVE-2024-27316 and kin): more `CONTINUATION` frames than the header
//!   list bound can need (5 at 64 KiB heads and 16 KiB frames) get `GOAWAY(ENHANCE_YOUR_CALM)`;
//! - HPACK bomb: a block that decodes past four times the advertised header list size (the
//!   sidecar advertises 64 KiB) gets `GOAWAY(ENHANCE_YOUR_CALM)` as soon as the decoder passes
//!   that size, whatever the block claims it would expand to;
//! - `SETTINGS` and `PING` floods: h2 acknowledges each one before it reads the next frame, so a
//!   flood costs the server one small write per frame and never a queue; there is no `GOAWAY`,
//!   every frame is acknowledged, and the connection still serves a request behind the flood.
//!
//! After each attack the sidecar process is still running, its resident memory grew by less than
//! [`RSS_GROWTH_BOUND_KIB`], and a normal request is served over both HTTP versions.

mod support;

use std::net::SocketAddr;

use http::StatusCode;
use support::attack::{self, RSS_GROWTH_BOUND_KIB, assert_still_serving, guarded, rss_kib};
use support::h2_frames::{
    self as h2, ACK, CANCEL, CONTINUATION, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, Frame,
    HEADERS, PING, SETTINGS,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A sidecar with the plaintext service `web` in front of a backend answering `200`, warmed up
/// (one request over each HTTP version) so the memory baseline includes a served connection.
async fn sidecar_with_web(tag: &str) -> (support::Sidecar, std::path::PathBuf) {
    let dir = support::temp_dir("mesh-attack-h2", tag);
    let (backend, _log) = attack::recording_backend(|_| StatusCode::OK).await;
    let config = attack::sidecar_config(&dir, &attack::plaintext_service("web", backend, ""));
    let mut sidecar = attack::start(&dir, &config).await;
    assert_still_serving(&mut sidecar, "web").await;
    (sidecar, dir)
}

/// Writes `attack` on a new connection (from its own task, so a server that stops reading
/// cannot block the test) and returns every frame the server sent until it closed it.
async fn attack(addr: SocketAddr, attack: Vec<u8>) -> Vec<Frame> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = tcp.into_split();
    let writer = tokio::spawn(async move {
        // The server may close before taking every byte.
        let _ = write.write_all(&attack).await;
        write
    });
    let frames = guarded("the server to close", h2::read_until_closed(&mut read)).await;
    drop(writer.await);
    frames
}

/// Runs `attack` and asserts that the connection ended with `GOAWAY(ENHANCE_YOUR_CALM)`, that the
/// sidecar survived with bounded memory, and still serves.
async fn assert_calmed(tag: &str, bytes: Vec<u8>) {
    let (mut sidecar, dir) = sidecar_with_web(tag).await;
    let pid = sidecar.child.0.id();
    let before = rss_kib(pid);
    let frames = attack(sidecar.outbound, bytes).await;
    assert_eq!(
        h2::goaway_code(&frames),
        Some(ENHANCE_YOUR_CALM),
        "{tag}: {frames:?}"
    );
    let after = rss_kib(pid);
    assert!(
        after < before + RSS_GROWTH_BOUND_KIB,
        "{tag}: RSS grew from {before} KiB to {after} KiB"
    );
    assert_still_serving(&mut sidecar, "web").await;
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_gets_enhance_your_calm() {
    let mut bytes = h2::handshake();
    let block = h2::get_block("web", "/reset");
    for i in 0..1000u32 {
        let stream = 2 * i + 1;
        bytes.extend(h2::frame(HEADERS, END_STREAM | END_HEADERS, stream, &block));
        bytes.extend(h2::rst_stream(stream, CANCEL));
    }
    assert_calmed("rapid-reset", bytes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_gets_enhance_your_calm() {
    let mut bytes = h2::handshake();
    bytes.extend(h2::frame(
        HEADERS,
        END_STREAM,
        1,
        &h2::get_block("web", "/"),
    ));
    // Never `END_HEADERS`: a server that buffered until the end would buffer for ever.
    let mut pad = Vec::new();
    h2::literal(&mut pad, "x-pad", b"0123456789");
    for _ in 0..1000 {
        bytes.extend(h2::frame(CONTINUATION, 0, 1, &pad));
    }
    assert_calmed("continuation-flood", bytes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpack_bomb_gets_enhance_your_calm() {
    // One 4 000-byte value into the dynamic table, then one-byte references to it: 48 KiB of
    // block that would decode to 48 000 × 4 KiB, nearly 200 MB.
    let mut block = h2::get_block("web", "/bomb");
    h2::literal_indexed(&mut block, "x-bomb", &[b'a'; 4000]);
    for _ in 0..48_000 {
        h2::indexed(&mut block, 62);
    }
    // In frames of at most 16 KiB, the default SETTINGS_MAX_FRAME_SIZE.
    let mut bytes = h2::handshake();
    let chunks: Vec<&[u8]> = block.chunks(16 * 1024).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let kind = if i == 0 { HEADERS } else { CONTINUATION };
        let mut flags = if i == 0 { END_STREAM } else { 0 };
        if i == chunks.len() - 1 {
            flags |= END_HEADERS;
        }
        bytes.extend(h2::frame(kind, flags, 1, chunk));
    }
    assert_calmed("hpack-bomb", bytes).await;
}

/// Floods one connection with `count` copies of a frame (`flood(i)` for the i-th), then asks for
/// `GET /after-flood` on stream 1; reads until that request is answered and returns the
/// frames the server sent. Asserts the sidecar's memory stayed bounded and that it still serves.
async fn flood(tag: &str, count: usize, flood: impl Fn(usize) -> Vec<u8>) -> Vec<Frame> {
    let (mut sidecar, dir) = sidecar_with_web(tag).await;
    let pid = sidecar.child.0.id();
    let before = rss_kib(pid);
    let mut bytes = h2::handshake();
    for i in 0..count {
        bytes.extend(flood(i));
    }
    bytes.extend(h2::frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &h2::get_block("web", "/after-flood"),
    ));
    let tcp = TcpStream::connect(sidecar.outbound).await.unwrap();
    let (mut read, mut write) = tcp.into_split();
    let writer = tokio::spawn(async move { write.write_all(&bytes).await.map(|()| write) });
    let mut frames = Vec::new();
    let answered = guarded("the request behind the flood", async {
        while let Some(frame) = h2::read_frame(&mut read).await {
            let done = frame.kind == HEADERS && frame.stream == 1;
            frames.push(frame);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert!(answered, "{tag}: the connection closed: {frames:?}");
    assert_eq!(h2::goaway_code(&frames), None, "{tag}");
    // `:status: 200` is entry 8 of HPACK's static table: one byte, 0x88.
    let response = frames.last().unwrap();
    assert_eq!(response.payload.first(), Some(&0x88), "{tag}: not a 200");
    let write = writer.await.unwrap().expect("the flood was taken whole");
    drop((read, write));
    let after = rss_kib(pid);
    assert!(
        after < before + RSS_GROWTH_BOUND_KIB,
        "{tag}: RSS grew from {before} KiB to {after} KiB"
    );
    assert_still_serving(&mut sidecar, "web").await;
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_flood_is_acknowledged_frame_by_frame() {
    const COUNT: usize = 20_000;
    // SETTINGS_ENABLE_PUSH = 0, which a client may send any number of times.
    let frames = flood("settings-flood", COUNT, |_| h2::settings(&[(0x2, 0)])).await;
    let acks = frames
        .iter()
        .filter(|f| f.kind == SETTINGS && f.flags & ACK != 0)
        .count();
    // One for the handshake's SETTINGS, one per flooding frame.
    assert_eq!(acks, COUNT + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_is_answered_ping_by_ping() {
    const COUNT: usize = 20_000;
    let frames = flood("ping-flood", COUNT, |i| h2::ping((i as u64).to_be_bytes())).await;
    let answered: Vec<u64> = frames
        .iter()
        .filter(|f| f.kind == PING && f.flags & ACK != 0)
        .map(|f| u64::from_be_bytes(f.payload[..8].try_into().unwrap()))
        .collect();
    // Each PING answered once, with its own payload, in order.
    assert_eq!(answered, (0..COUNT as u64).collect::<Vec<_>>());
}
