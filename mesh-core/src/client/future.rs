//! [`ResponseFuture`]: the future of one request sent by an [`HttpClient`](super::HttpClient).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use hyper::body::Incoming;

use super::http1::Http1Exchange;
use super::http2::Http2Exchange;
use super::request_body::SentBody;
use crate::error::BoxError;

/// Resolves to the response head once the endpoint answers; the body streams afterwards.
///
/// Errors are [`ConnectError`](crate::error::ConnectError) (no connection could be made; the request
/// was not sent), [`UpstreamError`](crate::error::UpstreamError) (the exchange failed; its
/// `request_sent` says whether the endpoint may have seen the request),
/// [`PoolExhausted`](crate::error::PoolExhausted) (HTTP/1.1: no connection came free in time; not
/// sent) or [`BadRequest`](crate::error::BadRequest) (the request's own body failed; its cause chain
/// holds a [`RequestBodyError`](crate::error::RequestBodyError)).
///
/// Dropping the future cancels the request without leaking anything: an HTTP/1.1 connection that was
/// carrying it is closed (the protocol cannot abandon one request and keep the connection) and its
/// slot is released; an HTTP/2 stream is reset while the connection stays up.
///
/// Per request, with HTTP/1.1 the client itself allocates nothing on a pooled connection: hyper's
/// send future (whose type cannot be named) is written into a slot allocated once per connection,
/// and the connection's own task puts it back in the pool after the response. With HTTP/2 the send
/// future is boxed and a second, small allocation keeps the request body's failure, should it
/// fail. Making a new connection allocates a little more.
pub struct ResponseFuture<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    Http1(Http1Exchange<SentBody<B>>),
    Http2(Http2Exchange<SentBody<B>>),
    Failed(Option<BoxError>),
}

impl<B> ResponseFuture<B> {
    pub(crate) fn http1(exchange: Http1Exchange<SentBody<B>>) -> Self {
        Self {
            kind: Kind::Http1(exchange),
        }
    }

    pub(crate) fn http2(exchange: Http2Exchange<SentBody<B>>) -> Self {
        Self {
            kind: Kind::Http2(exchange),
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        Self {
            kind: Kind::Failed(Some(error)),
        }
    }
}

impl<B> Future for ResponseFuture<B>
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<Incoming>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Both exchanges are `Unpin`, so the future is too and needs no pin projection.
        match &mut self.get_mut().kind {
            Kind::Http1(exchange) => Pin::new(exchange).poll(cx),
            Kind::Http2(exchange) => Pin::new(exchange).poll(cx),
            Kind::Failed(error) => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "HTTP client response future polled after completion".into()))),
        }
    }
}

impl<B> fmt::Debug for ResponseFuture<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Http1(_) => "http1",
            Kind::Http2(_) => "http2",
            Kind::Failed(_) => "failed",
        };
        f.debug_struct("ResponseFuture")
            .field("protocol", &state)
            .finish_non_exhaustive()
    }
}
