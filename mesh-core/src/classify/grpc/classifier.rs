//! The gRPC classifier and its end-of-stream half.

use std::fmt;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tower_http::classify::{ClassifiedResponse, ClassifyEos, ClassifyResponse, MakeClassifier};

use super::{GrpcCode, GrpcCodeSet, Pushback};
use crate::classify::{ErrorKind, FailureClass};

/// The name of the gRPC status header / trailer.
pub const GRPC_STATUS: &str = "grpc-status";

/// Classifies gRPC responses by their `grpc-status`.
///
/// - A *trailers-only* response (the usual shape of an error) carries `grpc-status` in its headers:
///   it is classified at once.
/// - A response without `grpc-status` and an HTTP status other than 200 came from something that
///   does not speak gRPC (a proxy, a load balancer): its status is mapped with
///   [`GrpcCode::from_http_status`], as gRPC clients do, and classified at once.
/// - Otherwise the status is in the trailers: the response is
///   [`RequiresEos`](ClassifiedResponse::RequiresEos) and [`GrpcEosClassifier`] reads it.
///
/// A valid code is a failure when it is in the [failure set](Self::with_failure_codes)
/// ([`GrpcCodeSet::SERVER_ERRORS`] by default); other codes, `NOT_FOUND` say, are successes as far
/// as the health of the server is concerned.
///
/// A response that breaks the protocol is a failure whatever the set holds:
/// a malformed `grpc-status` (empty, not digits, too large, not UTF-8) is a failure with
/// `UNKNOWN`, and a stream that ends without any `grpc-status` is a failure with `INTERNAL`. gRPC
/// requires the status in the trailers and `INTERNAL` is its code for broken protocol invariants;
/// such an end usually means the server or a proxy cut the stream short.
///
/// A `grpc-retry-pushback-ms` in the headers or trailers (trailers win) is carried in the failure.
///
/// `GrpcClassifier` is `Copy`; as a [`MakeClassifier`] it ignores the request and hands out itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrpcClassifier {
    failure_codes: GrpcCodeSet,
    trailers_in_body: bool,
}

impl GrpcClassifier {
    /// A classifier whose failure set is [`GrpcCodeSet::SERVER_ERRORS`].
    pub const fn new() -> Self {
        Self {
            failure_codes: GrpcCodeSet::SERVER_ERRORS,
            trailers_in_body: false,
        }
    }

    /// Counts exactly the codes in `codes` as failures (protocol violations always count).
    #[must_use]
    pub const fn with_failure_codes(mut self, codes: GrpcCodeSet) -> Self {
        self.failure_codes = codes;
        self
    }

    /// The codes counted as failures.
    pub const fn failure_codes(&self) -> GrpcCodeSet {
        self.failure_codes
    }

    /// Adapts the classifier to gRPC-Web, whose trailers travel inside the body where a classifier
    /// cannot see them.
    ///
    /// A status in the headers or in HTTP trailers is still used; a stream that ends without one is a
    /// success (nothing says otherwise), not a protocol violation.
    #[must_use]
    pub const fn for_grpc_web(mut self) -> Self {
        self.trailers_in_body = true;
        self
    }

    /// Judges one `grpc-status` value.
    fn judge_value(
        &self,
        value: &HeaderValue,
        pushback: Option<Pushback>,
    ) -> Result<(), FailureClass> {
        match GrpcCode::parse(value.as_bytes()) {
            Some(code) => self.judge_code(code, pushback),
            None => Err(FailureClass::Grpc {
                code: GrpcCode::UNKNOWN,
                pushback,
            }),
        }
    }

    fn judge_code(&self, code: GrpcCode, pushback: Option<Pushback>) -> Result<(), FailureClass> {
        if self.failure_codes.contains(code) {
            Err(FailureClass::Grpc { code, pushback })
        } else {
            Ok(())
        }
    }

    /// Classifies from the response head alone: `Some` when the head decides, `None` when the
    /// trailers must be read.
    pub(crate) fn classify_head(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<Result<(), FailureClass>> {
        let pushback = Pushback::from_headers(headers);
        if let Some(value) = headers.get(GRPC_STATUS) {
            // gRPC: when grpc-status is present it must be used, whatever the HTTP status.
            return Some(self.judge_value(value, pushback));
        }
        if status != StatusCode::OK {
            return Some(self.judge_code(GrpcCode::from_http_status(status), pushback));
        }
        None
    }

    fn eos_classifier(&self, headers: &HeaderMap) -> GrpcEosClassifier {
        GrpcEosClassifier {
            classifier: *self,
            header_pushback: Pushback::from_headers(headers),
        }
    }
}

impl Default for GrpcClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ClassifyResponse for GrpcClassifier {
    type FailureClass = FailureClass;
    type ClassifyEos = GrpcEosClassifier;

    fn classify_response<B>(
        self,
        res: &Response<B>,
    ) -> ClassifiedResponse<FailureClass, GrpcEosClassifier> {
        match self.classify_head(res.status(), res.headers()) {
            Some(result) => ClassifiedResponse::Ready(result),
            None => ClassifiedResponse::RequiresEos(self.eos_classifier(res.headers())),
        }
    }

    fn classify_error<E>(self, error: &E) -> FailureClass
    where
        E: fmt::Display + 'static,
    {
        FailureClass::Error(ErrorKind::of(error))
    }
}

impl MakeClassifier for GrpcClassifier {
    type Classifier = Self;
    type FailureClass = FailureClass;
    type ClassifyEos = GrpcEosClassifier;

    fn make_classifier<B>(&self, _req: &Request<B>) -> Self {
        *self
    }
}

/// Reads the `grpc-status` trailer of a response whose head did not decide; made by
/// [`GrpcClassifier`] (and [`MeshClassifier`](crate::classify::MeshClassifier)).
///
/// It remembers a `grpc-retry-pushback-ms` seen in the headers, used when the trailers carry none.
#[derive(Clone, Copy, Debug)]
pub struct GrpcEosClassifier {
    classifier: GrpcClassifier,
    header_pushback: Option<Pushback>,
}

impl ClassifyEos for GrpcEosClassifier {
    type FailureClass = FailureClass;

    fn classify_eos(self, trailers: Option<&HeaderMap>) -> Result<(), FailureClass> {
        let trailer_pushback = trailers.and_then(Pushback::from_headers);
        let pushback = trailer_pushback.or(self.header_pushback);
        match trailers.and_then(|t| t.get(GRPC_STATUS)) {
            Some(value) => self.classifier.judge_value(value, pushback),
            None if self.classifier.trailers_in_body => Ok(()),
            None => Err(FailureClass::Grpc {
                code: GrpcCode::INTERNAL,
                pushback,
            }),
        }
    }

    fn classify_error<E>(self, error: &E) -> FailureClass
    where
        E: fmt::Display + 'static,
    {
        FailureClass::Error(ErrorKind::of(error))
    }
}
