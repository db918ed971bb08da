//! [`IdleTimeoutBody`]: a body that fails when its source stops sending.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Frame, SizeHint};
use pin_project::pin_project;

use crate::error::BoxError;
use crate::time::{PooledSleep, deadline_after};

/// Wraps a body so that it fails with [`BodyStalled`] when its reader has been waiting for the
/// next frame longer than `timeout`.
///
/// The clock runs only while the reader waits: it starts when a poll finds no frame ready, and
/// stops at the next frame. So a slow *reader* (an upstream applying backpressure) never trips
/// it, and neither does a long body that keeps arriving; only a source that stops sending mid-body
/// does. The body is polled before the clock, so a frame that is ready is never refused.
///
/// Why a proxy needs it: a client that sends request headers and then a trickle (or nothing) of
/// its body holds the upstream connection the request was given — with an HTTP/1.1 pool of N
/// connections per endpoint, N such clients take an endpoint out of service. Wrapping the client's
/// request body bounds that. Through mesh-core's `HttpClient`, the failure ends the upstream
/// exchange as a `BadRequest` (the client's fault, `400`) and frees the connection.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Full};
/// use mesh_core::body::IdleTimeoutBody;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let body = IdleTimeoutBody::new(Full::new(Bytes::from_static(b"ready at once")), Duration::from_secs(30));
/// assert_eq!(body.collect().await.unwrap().to_bytes(), "ready at once");
/// # }
/// ```
#[pin_project]
#[derive(Debug)]
pub struct IdleTimeoutBody<B> {
    #[pin]
    inner: B,
    timeout: Duration,
    /// The clock, taken (a [`PooledSleep`]) the first time the reader waits and reset at each
    /// later wait: a body whose frames are always ready arms no timer.
    clock: Option<PooledSleep>,
    /// Whether the clock runs: the reader is waiting for a frame.
    waiting: bool,
}

impl<B> IdleTimeoutBody<B> {
    /// Wraps `inner`; each wait for a frame may last at most `timeout`.
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            clock: None,
            waiting: false,
        }
    }

    /// The wrapped body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> http_body::Body for IdleTimeoutBody<B>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            *this.waiting = false;
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let clock = match this.clock {
            Some(clock) if *this.waiting => clock,
            _ => PooledSleep::arm(
                this.clock,
                deadline_after(crate::time::now(), *this.timeout),
            ),
        };
        *this.waiting = true;
        match Pin::new(clock).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyStalled {
                timeout: *this.timeout,
            }
            .into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The failure of an [`IdleTimeoutBody`]: no frame arrived for the whole timeout while the body's
/// reader waited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyStalled {
    timeout: Duration,
}

impl BodyStalled {
    /// The bound that was exceeded.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "body stalled: no data for {} ms",
            self.timeout.as_millis()
        )
    }
}

impl std::error::Error for BodyStalled {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    use super::*;

    /// A body fed frame by frame through a channel.
    struct ChannelBody(mpsc::Receiver<Bytes>);

    impl http_body::Body for ChannelBody {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|data| data.map(|d| Ok(Frame::data(d))))
        }
    }

    fn channel_body() -> (mpsc::Sender<Bytes>, Pin<Box<IdleTimeoutBody<ChannelBody>>>) {
        let (tx, rx) = mpsc::channel(4);
        let body = IdleTimeoutBody::new(ChannelBody(rx), Duration::from_secs(10));
        (tx, Box::pin(body))
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_that_stops_sending_fails_after_the_timeout() {
        let (tx, mut body) = channel_body();
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        let started = tokio::time::Instant::now();
        let error = body.frame().await.unwrap().unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        let stalled = error.downcast_ref::<BodyStalled>().unwrap();
        assert_eq!(stalled.timeout(), Duration::from_secs(10));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_source_and_a_slow_reader_are_not_cut() {
        let (tx, mut body) = channel_body();
        let sender = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(9)).await;
                tx.send(Bytes::from_static(b"x")).await.unwrap();
            }
        });
        let mut got = 0;
        while let Some(frame) = body.frame().await {
            frame.unwrap();
            got += 1;
            // The reader pauses longer than the timeout between frames: not the source's fault.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        assert_eq!(got, 5);
        sender.await.unwrap();
    }
}
