//! [`Body`]: the one boxed body type mesh layers use where bodies of different types must meet.
//!
//! Layers that only pass a body through stay generic over `http_body::Body`. Where two kinds must
//! share one type (a proxy answering some requests itself, the error-to-response layer replacing an
//! error with a response), they use `Body`, which boxes any body whose error converts into
//! [`BoxError`] — except hyper's `Incoming`, an [`IdleTimeoutBody`] around it, `Full` and `Empty`,
//! which it holds inline, so that a proxy forwarding a received body, or answering with bytes,
//! allocates nothing for it. It is `Send` but not `Sync`, like hyper's own bodies, so anything that
//! streams fits.
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
use hyper::body::Incoming;

use crate::error::BoxError;

mod idle;
mod map;

pub use idle::{BodyStalled, IdleTimeoutBody};
pub use map::{MapBody, MapBodyFuture, MapBodyLayer};

/// An HTTP body of [`Bytes`] frames: any body, boxed, except the few kinds a proxy forwards on
/// every request, which are held inline.
///
/// Held inline (no allocation): hyper's [`Incoming`] (a request or response a server or client
/// received), an [`IdleTimeoutBody`] around one (what a proxy forwards), [`Full`] (what
/// `From<Bytes>`, `From<String>`… make) and [`Empty`]. Every other type is boxed once.
pub struct Body(Kind);

enum Kind {
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
    Incoming(Incoming),
    IdleIncoming(IdleTimeoutBody<Incoming>),
    Full(Full<Bytes>),
    Empty,
}

impl Body {
    /// Wraps any body: held as it is when it already is a `Body` or one of the kinds listed on
    /// [`Body`], else boxed.
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut slot = Some(body);
        let any = &mut slot as &mut dyn std::any::Any;
        if let Some(this) = any.downcast_mut::<Option<Body>>() {
            // Already a `Body`: reboxing would add one allocation and one indirection per frame.
            return this.take().expect("body present");
        }
        if let Some(incoming) = any.downcast_mut::<Option<Incoming>>() {
            return Self(Kind::Incoming(incoming.take().expect("body present")));
        }
        if let Some(idle) = any.downcast_mut::<Option<IdleTimeoutBody<Incoming>>>() {
            return Self(Kind::IdleIncoming(idle.take().expect("body present")));
        }
        if let Some(full) = any.downcast_mut::<Option<Full<Bytes>>>() {
            return Self(Kind::Full(full.take().expect("body present")));
        }
        if any.downcast_mut::<Option<Empty<Bytes>>>().is_some() {
            return Self(Kind::Empty);
        }
        let body = slot.take().expect("body present");
        Self(Kind::Boxed(body.map_err(Into::into).boxed_unsync()))
    }

    /// A body with no data and no trailers.
    pub fn empty() -> Self {
        Self(Kind::Empty)
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
            .field("size_hint", &http_body::Body::size_hint(self))
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
        // Every kind is `Unpin`.
        match &mut self.0 {
            Kind::Boxed(body) => Pin::new(body).poll_frame(cx),
            Kind::Incoming(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
            Kind::IdleIncoming(body) => Pin::new(body).poll_frame(cx),
            Kind::Full(body) => Pin::new(body).poll_frame(cx).map_err(|e| match e {}),
            Kind::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Boxed(body) => body.is_end_stream(),
            Kind::Incoming(body) => body.is_end_stream(),
            Kind::IdleIncoming(body) => body.is_end_stream(),
            Kind::Full(body) => body.is_end_stream(),
            Kind::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Boxed(body) => body.size_hint(),
            Kind::Incoming(body) => body.size_hint(),
            Kind::IdleIncoming(body) => body.size_hint(),
            Kind::Full(body) => body.size_hint(),
            Kind::Empty => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    #[tokio::test]
    async fn bytes_and_empty_bodies_are_held_inline() {
        assert!(matches!(Body::from("hello").0, Kind::Full(_)));
        assert!(matches!(Body::new(Empty::<Bytes>::new()).0, Kind::Empty));
        assert!(matches!(Body::empty().0, Kind::Empty));
        let boxed = Body::new(Once(Some(Bytes::from_static(b"streamed"))));
        assert!(matches!(boxed.0, Kind::Boxed(_)));
        assert_eq!(boxed.collect().await.unwrap().to_bytes(), "streamed");
        let full = Body::new(Full::new(Bytes::from_static(b"full")));
        assert_eq!(full.size_hint().exact(), Some(4));
        assert!(!full.is_end_stream());
        assert_eq!(full.collect().await.unwrap().to_bytes(), "full");
    }

    /// A one-frame body of a type `Body` boxes.
    struct Once(Option<Bytes>);

    impl http_body::Body for Once {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn boxes_once_and_keeps_bytes() {
        let body = Body::new(Body::from("hello"));
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert!(Body::empty().is_end_stream());
    }
}
