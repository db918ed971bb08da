//! [`SentBody`]: the request body as the HTTP/1.1 connection reads it, with its errors tagged.
//!
//! When a proxy forwards a client's request, the body it sends upstream is the one it is still
//! reading from the client. If that read fails (malformed chunked framing, a client gone mid-upload),
//! hyper fails the whole exchange, and without a tag the failure would look like the endpoint's. Each
//! error of the body is therefore wrapped in [`RequestBodyError`], which hyper keeps in its error's
//! cause chain; the exchange looks for it there and answers
//! [`BadRequest`](crate::error::BadRequest). Nothing is allocated unless the body fails.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project::pin_project;

use crate::error::{BoxError, RequestBodyError};

/// A request body whose errors are [`RequestBodyError`]s; otherwise the body itself.
#[pin_project]
pub(crate) struct SentBody<B> {
    #[pin]
    inner: B,
}

impl<B> SentBody<B> {
    pub(crate) fn new(inner: B) -> Self {
        Self { inner }
    }
}

impl<B> HttpBody for SentBody<B>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, RequestBodyError>>> {
        self.project()
            .inner
            .poll_frame(cx)
            .map(|frame| frame.map(|result| result.map_err(RequestBodyError::new)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
