//! The replayable body type.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use mesh_core::BoxError;
use pin_project::pin_project;

use super::shared::{Progress, Shared, lock};

/// The default replay cap: 64 KiB, what Linkerd and Pingora buffer.
///
/// Bodies of typical RPC and JSON API calls fit; uploads do not, and are not worth holding in
/// memory just in case a retry is needed.
pub const DEFAULT_REPLAY_CAP: usize = 64 * 1024;

/// Whether a [`ReplayBody`] can still be replayed, and if not why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayStatus {
    /// A [`replay`](ReplayBody::replay) will send the whole body again.
    Replayable,
    /// The body outgrew the cap, so its copy was dropped.
    Capped {
        /// The cap that was passed, in bytes.
        cap: usize,
    },
    /// The original body returned an error.
    BodyFailed,
    /// The body was made with [`ReplayBody::passthrough`]: it is never copied.
    Passthrough,
}

impl ReplayStatus {
    /// Whether a replay is possible.
    pub fn is_replayable(self) -> bool {
        matches!(self, Self::Replayable)
    }

    /// A short, stable name for metrics and logs: `"replayable"`, `"capped"`, `"body_failed"`,
    /// `"passthrough"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replayable => "replayable",
            Self::Capped { .. } => "capped",
            Self::BodyFailed => "body_failed",
            Self::Passthrough => "passthrough",
        }
    }
}

/// A request body that streams through once and can then be [replayed](Self::replay), up to a cap.
///
/// See the [module docs](super) for the model. Guarantees:
///
/// - every reader (the first one and each replay) yields the original data frames, in order,
///   exactly once, then the original trailers, then the end; or, if it cannot, a
///   [`ReplayError`](super::ReplayError) — never a gap or a duplicate;
/// - [`size_hint`](Body::size_hint) and [`is_end_stream`](Body::is_end_stream) are correct for
///   each reader: a replay counts the bytes it must catch up on plus what the original still
///   announces;
/// - at most `cap` bytes of data are held (the frames are shared `Bytes`, not copied again for
///   each replay); trailers are kept whatever their size.
///
/// Readers can be alive and polled at the same time (the first attempt may still be sending its
/// body when the retry starts). They share one lock, taken for each poll; each reader waiting on
/// the original body is woken when it yields, and when another reader is dropped.
///
/// An empty body (`is_end_stream()` true at the start) costs nothing: no buffer, no lock.
#[pin_project]
pub struct ReplayBody<B> {
    #[pin]
    inner: Inner<B>,
}

#[pin_project(project = InnerProj)]
enum Inner<B> {
    Empty,
    Passthrough(#[pin] B),
    Shared(Reader<B>),
}

/// One reader of a shared body.
struct Reader<B> {
    shared: Arc<Mutex<Shared<B>>>,
    progress: Progress,
}

impl<B> Drop for Reader<B> {
    fn drop(&mut self) {
        // This reader may have been the last to poll the original body, whose waker is then the
        // only one it will use: let the other waiting readers poll it again.
        lock(&self.shared).wake_waiters();
    }
}

impl<B> ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    /// Wraps `body`, keeping a copy of up to `cap` bytes of data for replays.
    pub fn new(body: B, cap: usize) -> Self {
        let inner = if body.is_end_stream() {
            Inner::Empty
        } else {
            Inner::Shared(Reader {
                shared: Arc::new(Mutex::new(Shared::new(body, cap))),
                progress: Progress::default(),
            })
        };
        Self { inner }
    }

    /// Wraps `body` without keeping a copy: it can never be replayed
    /// ([`ReplayStatus::Passthrough`]). For callers that know a request will not be retried.
    pub fn passthrough(body: B) -> Self {
        Self {
            inner: Inner::Passthrough(body),
        }
    }

    /// Whether [`replay`](Self::replay) will succeed, and if not why.
    pub fn status(&self) -> ReplayStatus {
        match &self.inner {
            Inner::Empty => ReplayStatus::Replayable,
            Inner::Passthrough(_) => ReplayStatus::Passthrough,
            Inner::Shared(reader) => lock(&reader.shared).status(),
        }
    }

    /// A new reader of the whole body, from its first byte; `None` unless
    /// [`status`](Self::status) is [`ReplayStatus::Replayable`].
    ///
    /// The new reader shares the copy and the rest of the original body with `self`. Calling it
    /// on a body that nobody has read yet is how the retry layer makes the first attempt's body
    /// while keeping one in reserve.
    pub fn replay(&self) -> Option<Self> {
        let inner = match &self.inner {
            Inner::Empty => Inner::Empty,
            Inner::Passthrough(_) => return None,
            Inner::Shared(reader) => {
                if !lock(&reader.shared).status().is_replayable() {
                    return None;
                }
                Inner::Shared(Reader {
                    shared: Arc::clone(&reader.shared),
                    progress: Progress::default(),
                })
            }
        };
        Some(Self { inner })
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().inner.project() {
            InnerProj::Empty => Poll::Ready(None),
            InnerProj::Passthrough(body) => body.poll_frame(cx).map(|frame| {
                frame.map(|frame| {
                    frame
                        .map(|frame| {
                            frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
                        })
                        .map_err(Into::into)
                })
            }),
            InnerProj::Shared(reader) => lock(&reader.shared).poll_frame(&mut reader.progress, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Passthrough(body) => body.is_end_stream(),
            Inner::Shared(reader) => lock(&reader.shared).is_end_stream(&reader.progress),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Passthrough(body) => body.size_hint(),
            Inner::Shared(reader) => lock(&reader.shared).size_hint(&reader.progress),
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner {
            Inner::Empty => "empty",
            Inner::Passthrough(_) => "passthrough",
            Inner::Shared(_) => "shared",
        };
        f.debug_struct("ReplayBody").field("kind", &kind).finish()
    }
}
