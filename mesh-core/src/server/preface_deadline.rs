//! [`PrefaceDeadline`]: bounds how long a client may take to show which HTTP version it speaks.
//!
//! hyper-util's auto connection first reads up to the 24-byte HTTP/2 connection preface
//! (RFC 9113 §3.4) to choose between HTTP/1.1 and HTTP/2, and that read has no timeout of its own:
//! the server's HTTP/1.1 header-read timeout only applies once HTTP/1.1 is chosen. Without this wrapper a client that
//! connects and sends nothing, or a few bytes of the preface, would hold a connection slot for ever.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Sleep, sleep};

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
pub(super) const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An IO whose reads fail with [`io::ErrorKind::TimedOut`] if the protocol is not settled in time.
///
/// The deadline is armed while every byte read so far is a prefix of the HTTP/2 preface and fewer
/// than 24 bytes have arrived, which is exactly while the version detection is still waiting. It is
/// disarmed for good by the first byte that differs from the preface (HTTP/1.1: hyper's own
/// header-read timeout takes over), by the complete preface (HTTP/2), or by end of stream.
#[derive(Debug)]
pub(super) struct PrefaceDeadline<I> {
    io: I,
    /// `None` once disarmed, or when no timeout is configured.
    deadline: Option<Pin<Box<Sleep>>>,
    /// How many bytes of the preface have been matched.
    matched: usize,
}

impl<I> PrefaceDeadline<I> {
    /// Wraps `io`; the deadline starts now. `None` means no deadline.
    pub(super) fn new(io: I, timeout: Option<Duration>) -> Self {
        Self {
            io,
            deadline: timeout.map(|t| Box::pin(sleep(t))),
            matched: 0,
        }
    }

    /// Follows the preface through newly read bytes, disarming the deadline once it is decided.
    fn observe(&mut self, new: &[u8]) {
        if new.is_empty() {
            self.deadline = None; // end of stream: hyper sees it and closes
            return;
        }
        for &byte in new {
            if byte != H2_PREFACE[self.matched] {
                self.deadline = None;
                return;
            }
            self.matched += 1;
            if self.matched == H2_PREFACE.len() {
                self.deadline = None;
                return;
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for PrefaceDeadline<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.deadline.is_some() {
                    this.observe(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                // Polling the sleep registers the waker, so a stalled read is woken to fail here.
                let expired = match &mut this.deadline {
                    Some(deadline) => deadline.as_mut().poll(cx).is_ready(),
                    None => false,
                };
                if expired {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client did not send a request in time",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

forward_async_write!(PrefaceDeadline);

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(chunks: &[&[u8]]) -> PrefaceDeadline<()> {
        let mut io = PrefaceDeadline::new((), Some(Duration::from_secs(1)));
        for chunk in chunks {
            io.observe(chunk);
        }
        io
    }

    #[tokio::test]
    async fn armed_while_the_preface_is_incomplete() {
        assert!(observed(&[]).deadline.is_some());
        assert!(observed(&[b"PRI * ", b"HTTP/2.0"]).deadline.is_some());
    }

    #[tokio::test]
    async fn disarmed_once_the_protocol_is_known() {
        assert!(observed(&[b"GET / HT"]).deadline.is_none(), "HTTP/1.1");
        assert!(
            observed(&[b"PRI * HTTP/1.1"]).deadline.is_none(),
            "not the preface"
        );
        assert!(
            observed(&[b"PRI * HTTP/2.0\r\n", b"\r\nSM\r\n\r\n"])
                .deadline
                .is_none()
        );
        assert!(observed(&[b"PRI", b""]).deadline.is_none(), "end of stream");
    }

    #[tokio::test]
    async fn no_timeout_means_never_armed() {
        assert!(PrefaceDeadline::new((), None).deadline.is_none());
    }
}
