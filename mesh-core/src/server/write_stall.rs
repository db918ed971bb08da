//! [`WriteStall`]: fails a connection whose writes stay blocked, the sign of a client that stopped
//! reading.
//!
//! A client that never reads its response fills its TCP window; the server's writes then stay
//! pending, and neither hyper nor the kernel ever gives up: the connection, the response body and,
//! in a proxy, the upstream connection feeding that body are held for ever. Reads cannot tell
//! this apart from a quiet client, but a write that has been waiting for the socket for long is
//! unambiguous, so only that is timed: the clock starts when a write (or flush, or shutdown)
//! returns `Pending` and is reset by any progress.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Sleep, sleep};

use super::registry::Activity;
use super::stats::ServerStats;

/// An IO whose writes fail with [`io::ErrorKind::TimedOut`] after `timeout` without progress.
#[derive(Debug)]
pub(super) struct WriteStall<I> {
    io: I,
    timeout: Option<Duration>,
    /// Armed while a write is blocked.
    stalled: Option<Pin<Box<Sleep>>>,
    stats: ServerStats,
    /// Told whether the last write was blocked, so the connection is never parked with output
    /// still inside hyper.
    activity: Option<Arc<Activity>>,
    /// What `activity` was last told, so the shared flag is written only when it changes.
    blocked: bool,
    /// Whether bytes were read since the last bytes written, as last told to `activity`.
    read_since_write: bool,
}

impl<I> WriteStall<I> {
    /// Wraps `io`; `None` never times out.
    pub(super) fn new(io: I, timeout: Option<Duration>, stats: ServerStats) -> Self {
        Self {
            io,
            timeout,
            stalled: None,
            stats,
            activity: None,
            blocked: false,
            read_since_write: false,
        }
    }

    /// Reports to `activity` whether the last write was blocked.
    pub(super) fn report_to(mut self, activity: Arc<Activity>) -> Self {
        self.activity = Some(activity);
        self
    }

    /// Tells the activity when the blocked state changes.
    fn set_blocked(&mut self, blocked: bool) {
        if self.blocked != blocked {
            self.blocked = blocked;
            if let Some(activity) = &self.activity {
                activity.set_write_blocked(blocked);
            }
        }
    }

    /// Tells the activity when bytes move in the other direction than last time.
    fn set_read_since_write(&mut self, read: bool) {
        if self.read_since_write != read {
            self.read_since_write = read;
            if let Some(activity) = &self.activity {
                activity.set_read_since_write(read);
            }
        }
    }

    /// Passes `poll` through, timing how long it stays `Pending`.
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut I>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        I: Unpin,
    {
        match poll(Pin::new(&mut self.io), cx) {
            Poll::Pending => {
                self.set_blocked(true);
                let Some(timeout) = self.timeout else {
                    return Poll::Pending;
                };
                let stalled = self.stalled.get_or_insert_with(|| Box::pin(sleep(timeout)));
                // Polling the sleep registers the waker, so a stalled writer is woken to fail.
                if stalled.as_mut().poll(cx).is_ready() {
                    self.stalled = None;
                    self.stats.record_write_stall();
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client stopped reading: write made no progress",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.set_blocked(false);
                self.stalled = None;
                ready
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteStall<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.set_read_since_write(true);
        }
        poll
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteStall<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = this.timed(cx, |io, cx| io.poll_write(cx, buf));
        if let Poll::Ready(Ok(1..)) = poll {
            this.set_read_since_write(false);
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = this.timed(cx, |io, cx| io.poll_write_vectored(cx, bufs));
        if let Poll::Ready(Ok(1..)) = poll {
            this.set_read_since_write(false);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().timed(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().timed(cx, |io, cx| io.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::io::AsyncWriteExt;
    use tokio_test::{assert_pending, assert_ready, task};

    use super::*;

    /// A writer whose socket is full until `open` is set; then it takes everything.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<AtomicBool>,
    }

    impl AsyncRead for Gate {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Gate {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.open.load(Ordering::SeqCst) {
                Poll::Ready(Ok(buf.len()))
            } else {
                Poll::Pending
            }
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn a_write_blocked_for_the_timeout_fails() {
        let stats = ServerStats::default();
        let mut io = WriteStall::new(Gate::default(), Some(TIMEOUT), stats.clone());
        let mut write = task::spawn(async move { io.write_all(b"response").await });
        assert_pending!(write.poll());
        tokio::time::advance(TIMEOUT - Duration::from_millis(1)).await;
        assert_pending!(write.poll());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(write.is_woken(), "the timer wakes the stalled writer");
        let error = assert_ready!(write.poll()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(stats.write_stalls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_restarts_the_clock() {
        let gate = Gate::default();
        let mut io = WriteStall::new(gate.clone(), Some(TIMEOUT), ServerStats::default());
        let mut first = task::spawn(async { io.write_all(b"one").await });
        assert_pending!(first.poll());
        tokio::time::advance(TIMEOUT - Duration::from_secs(1)).await;
        gate.open.store(true, Ordering::SeqCst);
        assert_ready!(first.poll()).unwrap();
        drop(first);

        // Blocked again: a full timeout from now, not from the first stall.
        gate.open.store(false, Ordering::SeqCst);
        let mut second = task::spawn(async { io.write_all(b"two").await });
        assert_pending!(second.poll());
        tokio::time::advance(TIMEOUT - Duration::from_secs(1)).await;
        assert_pending!(second.poll());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(assert_ready!(second.poll()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn no_timeout_waits_for_ever() {
        let mut io = WriteStall::new(Gate::default(), None, ServerStats::default());
        let mut write = task::spawn(async move { io.write_all(b"response").await });
        assert_pending!(write.poll());
        tokio::time::advance(Duration::from_secs(3_600)).await;
        assert_pending!(write.poll());
    }
}
