//! The state shared by every reader of one replayable body.
//!
//! Invariants (what makes "no byte duplicated or lost" hold):
//!
//! - the original body is only ever read by a reader that has seen *every* frame pulled so far
//!   (`Reader::seen == Shared::pulled`), so nothing it pulls can be out of order for it;
//! - every data frame pulled is appended to `frames` until the cap is passed, so a reader that is
//!   behind catches up from `frames`, in order, one frame per poll, before it reaches the tail;
//! - once the cap is passed `frames` is dropped for good, and a reader that is behind gets a
//!   [`ReplayError`] instead of a gap.
//!
//! Wake-ups: the original body remembers only the waker of its last poller. Readers that wait on
//! it are therefore also kept in `waiters`; whenever the original yields anything, or a reader is
//! dropped (it may have been that last poller), the waiters are woken so that they re-poll.

use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::{ReplayError, ReplayStatus};
use mesh_core::BoxError;

pub(super) struct Shared<B> {
    /// The original body; `None` once it ended or failed.
    body: Option<Pin<Box<B>>>,
    /// Data frames pulled so far, in order (empty and unused once `capped`).
    frames: Vec<Bytes>,
    pulled_frames: usize,
    pulled_bytes: u64,
    trailers: Option<HeaderMap>,
    ended: bool,
    failed: bool,
    capped: bool,
    cap: usize,
    /// Readers waiting on the original body (inline: no allocation).
    waiters: [Option<Waker>; 4],
}

/// One reader's progress through the shared body.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Progress {
    seen_frames: usize,
    seen_bytes: u64,
    trailers_sent: bool,
}

pub(super) fn lock<B>(shared: &Mutex<Shared<B>>) -> MutexGuard<'_, Shared<B>> {
    // Every update below leaves the state consistent, so a poisoned lock is still usable.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl<B> Shared<B> {
    pub(super) fn new(body: B, cap: usize) -> Self {
        Self {
            body: Some(Box::pin(body)),
            frames: Vec::new(),
            pulled_frames: 0,
            pulled_bytes: 0,
            trailers: None,
            ended: false,
            failed: false,
            capped: false,
            cap,
            waiters: Default::default(),
        }
    }

    /// Wakes every reader waiting on the original body.
    pub(super) fn wake_waiters(&mut self) {
        for waiter in &mut self.waiters {
            if let Some(waker) = waiter.take() {
                waker.wake();
            }
        }
    }

    fn register(&mut self, waker: &Waker) {
        if self.waiters.iter().flatten().any(|w| w.will_wake(waker)) {
            return;
        }
        match self.waiters.iter_mut().find(|w| w.is_none()) {
            Some(free) => *free = Some(waker.clone()),
            None => {
                // More than four readers waiting at once: the oldest re-polls and re-registers.
                if let Some(oldest) = self.waiters[0].replace(waker.clone()) {
                    oldest.wake();
                }
            }
        }
    }

    pub(super) fn status(&self) -> ReplayStatus {
        if self.capped {
            ReplayStatus::Capped { cap: self.cap }
        } else if self.failed {
            ReplayStatus::BodyFailed
        } else {
            ReplayStatus::Replayable
        }
    }
}

impl<B> Shared<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    pub(super) fn poll_frame(
        &mut self,
        me: &mut Progress,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if me.seen_frames < self.pulled_frames {
            if self.capped {
                return Poll::Ready(Some(Err(ReplayError::capped().into())));
            }
            let chunk = self.frames[me.seen_frames].clone();
            me.seen_frames += 1;
            me.seen_bytes += chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if let Some(trailers) = &self.trailers {
            if me.trailers_sent {
                return Poll::Ready(None);
            }
            me.trailers_sent = true;
            return Poll::Ready(Some(Ok(Frame::trailers(trailers.clone()))));
        }
        if self.failed {
            return Poll::Ready(Some(Err(ReplayError::body_failed().into())));
        }
        loop {
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(None);
            };
            let polled = body.as_mut().poll_frame(cx);
            if polled.is_pending() {
                self.register(cx.waker());
                return Poll::Pending;
            }
            self.wake_waiters();
            let frame = match ready!(polled) {
                None => {
                    self.ended = true;
                    self.body = None;
                    return Poll::Ready(None);
                }
                Some(Err(error)) => {
                    self.failed = true;
                    self.body = None;
                    return Poll::Ready(Some(Err(error.into())));
                }
                Some(Ok(frame)) => frame,
            };
            let frame = match frame.into_data() {
                Ok(mut data) => {
                    let chunk = data.copy_to_bytes(data.remaining());
                    self.push(chunk.clone());
                    me.seen_frames = self.pulled_frames;
                    me.seen_bytes = self.pulled_bytes;
                    Frame::data(chunk)
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        // Trailers end the stream (http-body contract): stop reading the body.
                        self.trailers = Some(trailers.clone());
                        self.ended = true;
                        self.body = None;
                        me.trailers_sent = true;
                        Frame::trailers(trailers)
                    }
                    // A frame kind this crate does not know: it cannot be replayed, skip it.
                    Err(_) => continue,
                },
            };
            return Poll::Ready(Some(Ok(frame)));
        }
    }

    fn push(&mut self, chunk: Bytes) {
        // An empty chunk carries nothing to replay; keeping it would let a stream of empty frames
        // grow `frames` without bound while the byte cap never trips.
        if chunk.is_empty() {
            return;
        }
        let len = chunk.len() as u64;
        self.pulled_frames += 1;
        self.pulled_bytes += len;
        if self.capped {
            return;
        }
        if self.pulled_bytes > self.cap as u64 {
            self.capped = true;
            self.frames = Vec::new();
        } else {
            self.frames.push(chunk);
        }
    }

    pub(super) fn is_end_stream(&self, me: &Progress) -> bool {
        if me.seen_frames < self.pulled_frames {
            return false;
        }
        if self.trailers.is_some() {
            return me.trailers_sent;
        }
        match &self.body {
            _ if self.ended => true,
            _ if self.failed => false,
            Some(body) => body.is_end_stream(),
            None => true,
        }
    }

    pub(super) fn size_hint(&self, me: &Progress) -> SizeHint {
        let behind = if self.capped && me.seen_frames < self.pulled_frames {
            0
        } else {
            self.pulled_bytes - me.seen_bytes
        };
        match &self.body {
            Some(body) => {
                let tail = body.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(tail.lower().saturating_add(behind));
                if let Some(upper) = tail.upper() {
                    hint.set_upper(upper.saturating_add(behind));
                }
                hint
            }
            None if self.failed => {
                let mut hint = SizeHint::new();
                hint.set_lower(behind);
                hint
            }
            None => SizeHint::with_exact(behind),
        }
    }
}
