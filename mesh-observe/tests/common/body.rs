//! A response body with one data frame and trailers, as a gRPC server sends.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};

/// Yields `data`, then `trailers`, then the end.
#[derive(Debug)]
pub struct TrailersBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl TrailersBody {
    pub fn new(data: &'static [u8], trailers: HeaderMap) -> Self {
        Self {
            data: Some(Bytes::from_static(data)),
            trailers: Some(trailers),
        }
    }

    pub fn grpc_status(code: u32) -> Self {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", code.to_string().parse().unwrap());
        Self::new(b"\0\0\0\0\0", trailers)
    }
}

impl Body for TrailersBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}
