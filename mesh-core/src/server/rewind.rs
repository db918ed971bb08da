//! [`Rewind`]: an IO that first hands back bytes already read from it.
//!
//! The server reads a connection's first bytes itself (to tell HTTP/1.1 from HTTP/2) and, when an
//! idle HTTP/1.1 connection is parked, takes back the bytes hyper had read but not yet parsed. A
//! fresh hyper connection must see those bytes before anything else from the socket, so they are
//! kept here and served first. The buffer is dropped as soon as it has been read out, so a parked
//! connection holds no allocation for it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

/// An IO with bytes to replay before reading on.
#[derive(Debug)]
pub(super) struct Rewind<I> {
    io: I,
    /// Bytes to hand out before reading `io`; empty (and unallocated) once handed out.
    replay: Bytes,
}

impl<I> Rewind<I> {
    /// Wraps `io` with nothing to replay.
    pub(super) fn new(io: I) -> Self {
        Self {
            io,
            replay: Bytes::new(),
        }
    }

    /// Puts `bytes` in front of what is still to be replayed: they were read before it.
    pub(super) fn rewind(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        if self.replay.is_empty() {
            self.replay = bytes;
        } else {
            let mut joined = BytesMut::with_capacity(bytes.len() + self.replay.len());
            joined.extend_from_slice(&bytes);
            joined.extend_from_slice(&self.replay);
            self.replay = joined.freeze();
        }
    }

    /// Whether bytes are waiting to be replayed.
    pub(super) fn has_replay(&self) -> bool {
        !self.replay.is_empty()
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            if n == this.replay.len() {
                // Release the allocation (hyper's whole read buffer, after a park).
                this.replay = Bytes::new();
            } else {
                this.replay.advance(n);
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

forward_async_write!(Rewind);

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn replays_in_order_then_reads_on() {
        let mut io = Rewind::new(&b" world"[..]);
        io.rewind(Bytes::from_static(b"lo"));
        io.rewind(Bytes::from_static(b"hel"));
        assert!(io.has_replay());
        let mut small = [0u8; 2];
        io.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"he");
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"llo world");
        assert!(!io.has_replay());
        assert!(io.replay.is_empty());
    }
}
