//! [`SentBody`]: the request body as the HTTP/1.1 connection reads it, with its errors tagged.
//!
//! When a proxy forwards a client's request, the body it sends upstream is the one it is still
//! reading from the client. If that read fails (malformed chunked framing, a client gone mid-upload),
//! hyper fails the whole exchange, and without a tag the failure would look like the endpoint's. Each
//! error of the body is therefore wrapped in [`RequestBodyError`]. Over HTTP/1.1 hyper keeps it in
//! its error's cause chain, where the exchange looks for it, and nothing is allocated unless the body
//! fails. Over HTTP/2 hyper only logs it and resets the stream, so the body keeps it in a slot
//! shared with the exchange ([`SentBody::with_slot`], one small allocation per request). Either way
//! the exchange answers [`BadRequest`](crate::error::BadRequest).

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project::pin_project;

use crate::error::{BoxError, RequestBodyError};

/// A request body whose errors are [`RequestBodyError`]s; otherwise the body itself.
#[pin_project]
pub(crate) struct SentBody<B> {
    #[pin]
    inner: B,
    /// Where the body's failure is kept for the exchange, when hyper would not report it.
    slot: Option<BodyFailure>,
}

/// The failure of a sent body, kept for its exchange.
#[derive(Clone, Default)]
pub(crate) struct BodyFailure(Arc<Mutex<Option<RequestBodyError>>>);

impl BodyFailure {
    /// The body's failure, if it failed (once).
    pub(crate) fn take(&self) -> Option<RequestBodyError> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn keep(&self, error: RequestBodyError) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }
}

impl<B> SentBody<B> {
    /// A body whose failure hyper reports itself (HTTP/1.1).
    pub(crate) fn new(inner: B) -> Self {
        Self { inner, slot: None }
    }

    /// A body whose failure is kept in the returned slot (HTTP/2).
    pub(crate) fn with_slot(inner: B) -> (Self, BodyFailure) {
        let slot = BodyFailure::default();
        let body = Self {
            inner,
            slot: Some(slot.clone()),
        };
        (body, slot)
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
        let this = self.project();
        let slot = this.slot;
        this.inner.poll_frame(cx).map(|frame| {
            frame.map(|result| {
                result.map_err(|error| {
                    let error = RequestBodyError::new(error);
                    match slot {
                        Some(slot) => {
                            // hyper logs what it gets here; the exchange reports the real error.
                            let logged = RequestBodyError::new(error.to_string());
                            slot.keep(error);
                            logged
                        }
                        None => error,
                    }
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
