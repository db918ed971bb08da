//! One flood connection: what it sends, and how it is held until the close.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An empty SETTINGS frame: length 0, type 0x4, no flags, stream 0 (RFC 9113 §6.5).
const H2_EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 0x4, 0, 0, 0, 0, 0];

/// Bound on connecting and sending the payload, and on one steady `GET`.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What each connection does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The HTTP/2 preface and an empty SETTINGS frame, then nothing.
    H2,
    /// An HTTP/1.1 request head that never ends.
    Http1,
    /// No flood: paced `GET`s for a baseline.
    Steady,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "h2" => Ok(Self::H2),
            "http1" => Ok(Self::Http1),
            "steady" => Ok(Self::Steady),
            _ => Err("expected h2, http1 or steady".into()),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::H2 => "h2",
            Self::Http1 => "http1",
            Self::Steady => "steady",
        })
    }
}

impl Mode {
    /// The bytes each connection sends once. For `Http1`, a request line and `x-fill` headers of
    /// 1 000-byte values up to about `head_bytes`, without the blank line that ends a head.
    pub(crate) fn payload(self, head_bytes: usize) -> Vec<u8> {
        match self {
            Self::H2 => [H2_PREFACE, &H2_EMPTY_SETTINGS].concat(),
            Self::Http1 => {
                let mut head = b"GET / HTTP/1.1\r\nhost: flood\r\n".to_vec();
                let mut i = 0;
                while head.len() < head_bytes {
                    let room = head_bytes - head.len();
                    let value = "v".repeat(room.saturating_sub(16).clamp(1, 1_000));
                    head.extend_from_slice(format!("x-fill-{i}: {value}\r\n").as_bytes());
                    i += 1;
                }
                head
            }
            Self::Steady => Vec::new(),
        }
    }
}

/// How a held connection ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Open until the tool closed it.
    Held,
    /// The server closed it (or reset it) first.
    ClosedByServer,
    /// It never opened.
    Failed,
}

/// Connects and sends `payload`; in mode `H2`, also waits for the server's first bytes (its
/// SETTINGS), so an open connection is one the server has accepted and serves.
pub(crate) async fn open(
    addr: SocketAddr,
    mode: Mode,
    payload: &[u8],
) -> std::io::Result<TcpStream> {
    let io = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(payload).await?;
        if mode == Mode::H2 {
            let mut buf = [0u8; 256];
            if stream.read(&mut buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(stream)
    };
    tokio::time::timeout(IO_TIMEOUT, io)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect + send"))?
}

/// Reads and drops whatever the server sends (its SETTINGS, for instance, so nothing is left
/// unread at the close) until `close` turns true, then drops the connection.
pub(crate) async fn hold(mut stream: TcpStream, mut close: watch::Receiver<bool>) -> Ending {
    let mut buf = [0u8; 256];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Ending::ClosedByServer,
                Ok(_) => {}
            },
            _ = close.wait_for(|closed| *closed) => return Ending::Held,
        }
    }
}

/// One `GET /` with `Connection: close`; the status code.
pub(crate) async fn get(addr: SocketAddr, host: &str) -> Result<u16, String> {
    let io = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(IO_TIMEOUT, io)
        .await
        .map_err(|_| "no answer in time".to_owned())?
        .map_err(|e| e.to_string())?;
    status_code(&answer).ok_or_else(|| "not an HTTP/1.1 answer".to_owned())
}

/// The status code of an HTTP/1.x answer (`HTTP/1.1 200 OK` → 200).
fn status_code(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\r').next()?;
    let code = std::str::from_utf8(line).ok()?.split(' ').nth(1)?;
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http1_payload_is_an_unfinished_head_of_the_asked_size() {
        let head = Mode::Http1.payload(30_000);
        assert!((30_000..30_100).contains(&head.len()), "{}", head.len());
        assert!(head.ends_with(b"\r\n"));
        assert!(!head.windows(4).any(|w| w == b"\r\n\r\n"));
    }

    #[test]
    fn an_h2_payload_is_the_preface_and_an_empty_settings_frame() {
        let payload = Mode::H2.payload(30_000);
        assert_eq!(payload.len(), 24 + 9);
        assert!(payload.starts_with(b"PRI * HTTP/2.0"));
    }

    #[test]
    fn status_codes_and_modes_parse() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n\r\n"), Some(200));
        assert_eq!(status_code(b"garbage"), None);
        assert_eq!("http1".parse::<Mode>(), Ok(Mode::Http1));
        assert!("h3".parse::<Mode>().is_err());
    }
}
