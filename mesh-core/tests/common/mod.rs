//! Helpers shared by the integration tests. Each test binary uses a part of them.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How long, in real time, a guarded wait may take before the test run is aborted.
pub(crate) const GUARD: Duration = Duration::from_secs(60);

/// Awaits `fut`, bounded in real time. Not with `tokio::time::timeout`: on the paused clock a
/// pending timer is where time jumps to whenever every task waits, even while loopback bytes are
/// still on their way (a client's second small write waits, under Nagle's algorithm, for the
/// server's delayed ACK of the first: tens of real milliseconds), so a guard timer could fire
/// before the server had read them. A watchdog thread on the real clock names the wait and
/// aborts the run if it takes longer than [`GUARD`].
pub(crate) async fn guarded<F: Future>(what: &str, fut: F) -> F::Output {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let what = what.to_owned();
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(GUARD) {
            eprintln!("timed out waiting for {what}");
            std::process::abort();
        }
    });
    let out = fut.await;
    drop(done);
    watchdog.join().expect("the watchdog thread does not panic");
    out
}

/// Sends a request head with a 300 KB header on `tcp` and returns the server's answer, read up
/// to the close (or reset). Written raw: the server answers and closes before reading it all, so
/// the writer may fail.
pub(crate) async fn answer_to_an_oversized_head(tcp: TcpStream) -> String {
    let (mut read, mut write) = tcp.into_split();
    let head = format!(
        "GET / HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n",
        "a".repeat(300_000)
    );
    tokio::spawn(async move { write.write_all(head.as_bytes()).await });
    let mut answer = Vec::new();
    let mut chunk = [0; 1024];
    while let Ok(n @ 1..) = guarded("the answer", read.read(&mut chunk)).await {
        answer.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A response body the test feeds chunk by chunk; it ends when the test drops the sender.
pub(crate) struct ChannelBody(pub(crate) mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}
