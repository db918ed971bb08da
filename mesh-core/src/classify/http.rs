//! The HTTP classifier.

use std::fmt;

use http::{HeaderMap, Request, Response, StatusCode};
use tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, MakeClassifier, NeverClassifyEos,
};

use super::{ErrorKind, FailureClass, RetryAfter};

/// Classifies plain HTTP responses by status code.
///
/// | Response                                    | Outcome                                          |
/// |---------------------------------------------|--------------------------------------------------|
/// | 429 Too Many Requests                       | [`FailureClass::Overloaded`], delay if any       |
/// | 503 with a well-formed `Retry-After`        | [`FailureClass::Overloaded`] with the delay      |
/// | other 5xx (503 without `Retry-After` too)   | [`FailureClass::Status`]                         |
/// | status ≥ 600 (outside RFC 9110's classes)   | [`FailureClass::Status`]                         |
/// | 1xx–4xx except 429                          | success                                          |
/// | an error instead of a response              | [`FailureClass::Error`] with its [`ErrorKind`]   |
///
/// A 503 is only "overloaded" when the server says when to come back; without that it is treated as
/// a broken server, which is what outlier ejection and circuit breakers should react to. A 429
/// always means "too much from you", never "broken". See [`RetryAfter`] for how the header is read.
///
/// The head always decides, so the end-of-stream half is tower-http's [`NeverClassifyEos`].
/// `HttpClassifier` is `Copy`; as a [`MakeClassifier`] it ignores the request and hands out itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpClassifier {
    // Room for options without breaking users.
    _priv: (),
}

impl HttpClassifier {
    /// The classifier.
    pub const fn new() -> Self {
        Self { _priv: () }
    }

    /// Classifies a response head, for callers that hold the parts rather than a [`Response`].
    pub fn classify_head(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<(), FailureClass> {
        match status {
            StatusCode::TOO_MANY_REQUESTS => Err(FailureClass::Overloaded {
                status,
                retry_after: RetryAfter::from_headers(headers),
            }),
            StatusCode::SERVICE_UNAVAILABLE => match RetryAfter::from_headers(headers) {
                Some(retry_after) => Err(FailureClass::Overloaded {
                    status,
                    retry_after: Some(retry_after),
                }),
                None => Err(FailureClass::Status(status)),
            },
            _ if status.as_u16() >= 500 => Err(FailureClass::Status(status)),
            _ => Ok(()),
        }
    }
}

impl ClassifyResponse for HttpClassifier {
    type FailureClass = FailureClass;
    type ClassifyEos = NeverClassifyEos<FailureClass>;

    fn classify_response<B>(
        self,
        res: &Response<B>,
    ) -> ClassifiedResponse<FailureClass, NeverClassifyEos<FailureClass>> {
        ClassifiedResponse::Ready(self.classify_head(res.status(), res.headers()))
    }

    fn classify_error<E>(self, error: &E) -> FailureClass
    where
        E: fmt::Display + 'static,
    {
        FailureClass::Error(ErrorKind::of(error))
    }
}

impl MakeClassifier for HttpClassifier {
    type Classifier = Self;
    type FailureClass = FailureClass;
    type ClassifyEos = NeverClassifyEos<FailureClass>;

    fn make_classifier<B>(&self, _req: &Request<B>) -> Self {
        *self
    }
}
