//! [`Body`]: the one boxed body type mesh layers use where bodies of different types must meet.
//!
//! Layers that only pass a body through stay generic over `http_body::Body`. Where two kinds must
//! share one type (a proxy answering some requests itself, the error-to-response layer replacing an
//! error with a response), they use `Body`, which boxes any body whose error converts into
//! [`BoxError`]. It is `Send` but not `Sync`, like hyper's own bodies, so anything that streams fits.
//!
//! [`IdleTimeoutBody`] bounds how long a body may keep its reader waiting: a proxy wraps the
//! client's request body in it so that a stalled upload cannot hold an upstream connection.
//!
//! [`MapBodyLayer`] boxes a service's response body into `Body`, so a stack fits the boxed
//! service types of [`service`](crate::service) without a `map_response` closure.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

use crate::error::BoxError;

mod idle;
mod map;

pub use idle::{BodyStalled, IdleTimeoutBody};
pub use map::{MapBody, MapBodyFuture, MapBodyLayer};

/// A boxed HTTP body of [`Bytes`] frames.
pub struct Body(UnsyncBoxBody<Bytes, BoxError>);

impl Body {
    /// Boxes any body (unless it already is a `Body`).
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut slot = Some(body);
        if let Some(this) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<Body>>() {
            // Already boxed: reboxing would add one allocation and one indirection per frame.
            if let Some(body) = this.take() {
                return body;
            }
        }
        let body = slot.take().expect("body present");
        Self(body.map_err(Into::into).boxed_unsync())
    }

    /// A body with no data and no trailers.
    pub fn empty() -> Self {
        Self::new(Empty::<Bytes>::new())
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("size_hint", &http_body::Body::size_hint(&self.0))
            .finish()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self::new(Full::new(bytes))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Self::from(Bytes::from_static(s.as_bytes()))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Self::from(Bytes::from(s))
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Self::from(Bytes::from(v))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    #[tokio::test]
    async fn boxes_once_and_keeps_bytes() {
        let body = Body::new(Body::from("hello"));
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert!(Body::empty().is_end_stream());
    }
}
