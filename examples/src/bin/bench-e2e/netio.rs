//! Minimal HTTP/1.1 over any tokio stream, for the warm-up requests, the idle connections and the
//! handshake client. Written on the `AsyncRead`/`AsyncWrite` poll methods because the package's
//! tokio build has no `io-util` feature.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::targets::HOST;

/// A keep-alive `GET /`.
pub(crate) fn get_keep_alive() -> String {
    format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n")
}

/// A `GET /` that asks the server to close the connection after answering.
pub(crate) fn get_close() -> String {
    format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")
}

/// `count` keep-alive `GET /`s, one after the other, over `connections` connections to `addr`
/// taken in turn; each must answer `200`.
pub(crate) async fn sequential_gets(
    addr: SocketAddr,
    count: usize,
    connections: usize,
) -> Result<(), String> {
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        streams.push(stream);
    }
    let request = get_keep_alive();
    for i in 0..count {
        let n = streams.len();
        let stream = &mut streams[i % n];
        write_all(stream, request.as_bytes())
            .await
            .map_err(|e| format!("write to {addr}: {e}"))?;
        match read_response(stream, false).await {
            Ok(200) => {}
            Ok(status) => return Err(format!("request to {addr}: status {status}")),
            Err(e) => return Err(format!("request to {addr}: {e}")),
        }
    }
    Ok(())
}

/// Writes all of `buf` and flushes.
pub(crate) async fn write_all<S: AsyncWrite + Unpin>(
    stream: &mut S,
    mut buf: &[u8],
) -> io::Result<()> {
    while !buf.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, buf)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    poll_fn(|cx| Pin::new(&mut *stream).poll_flush(cx)).await
}

/// Reads one response and returns its status. With `until_eof` the body runs to the end of the
/// stream (`Connection: close`); otherwise it is `Content-Length` bytes and the stream stays usable.
pub(crate) async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    until_eof: bool,
) -> io::Result<u16> {
    let mut data = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        let mut buf = ReadBuf::new(&mut chunk);
        let read = poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, &mut buf)).await;
        let n = match read {
            Ok(()) => buf.filled().len(),
            // A server may close a `Connection: close` exchange without a TLS close_notify.
            Err(e) if until_eof && e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        data.extend_from_slice(&chunk[..n]);
        match parse_head(&data) {
            Some(head) if !until_eof && data.len() >= head.header_len + head.content_length => {
                return Ok(head.status);
            }
            Some(head) if n == 0 => return Ok(head.status),
            None if n == 0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "no complete response",
                ));
            }
            _ => {}
        }
    }
}

/// The parts of a response head the readers need.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// The status code.
    pub(crate) status: u16,
    /// Bytes up to and including the blank line.
    pub(crate) header_len: usize,
    /// `Content-Length`, 0 when absent.
    pub(crate) content_length: usize,
}

/// Parses a response head once it is complete (`None` before the blank line arrives).
pub(crate) fn parse_head(data: &[u8]) -> Option<Head> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = std::str::from_utf8(&data[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let content_length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    Some(Head {
        status,
        header_len: end,
        content_length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_once_complete() {
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n"),
            None
        );
        let head =
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx: y\r\n\r\nhello").unwrap();
        assert_eq!(
            head,
            Head {
                status: 200,
                header_len: 44,
                content_length: 5
            }
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
                .unwrap()
                .status,
            503
        );
    }
}
