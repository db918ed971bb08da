//! The default classifier: gRPC or HTTP, chosen per request.

use std::fmt;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, Request, Response};
use tower_http::classify::{ClassifiedResponse, ClassifyResponse, MakeClassifier};

use super::{FailureClass, GrpcClassifier, GrpcEosClassifier, HttpClassifier};

/// The classifier mesh layers use by default: it picks the gRPC or the HTTP classifier for each
/// request from the request's `content-type`.
///
/// - `application/grpc`, `application/grpc+proto`, `application/grpc;…` (any `+suffix` or parameters)
///   → the [`GrpcClassifier`];
/// - `application/grpc-web`, `application/grpc-web+proto`, `application/grpc-web-text…` → the same
///   classifier [adapted to gRPC-Web](GrpcClassifier::for_grpc_web);
/// - anything else, or no `content-type` → the [`HttpClassifier`].
///
/// Matching ignores ASCII case, as media types do. `MeshClassifier` is `Copy`; it is meant to be
/// stored in a layer and asked for a classifier per request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeshClassifier {
    http: HttpClassifier,
    grpc: GrpcClassifier,
}

impl MeshClassifier {
    /// The default classifiers for both protocols.
    pub const fn new() -> Self {
        Self {
            http: HttpClassifier::new(),
            grpc: GrpcClassifier::new(),
        }
    }

    /// Uses `grpc` (its failure set, say) for gRPC and gRPC-Web requests.
    #[must_use]
    pub const fn with_grpc(mut self, grpc: GrpcClassifier) -> Self {
        self.grpc = grpc;
        self
    }

    /// The gRPC classifier in use.
    pub const fn grpc(&self) -> &GrpcClassifier {
        &self.grpc
    }
}

impl MakeClassifier for MeshClassifier {
    type Classifier = MeshResponseClassifier;
    type FailureClass = FailureClass;
    type ClassifyEos = GrpcEosClassifier;

    /// gRPC by the request's `content-type` (see [`is_grpc`]), for `POST` requests only: every
    /// gRPC call is a `POST` (native gRPC and gRPC-Web alike), so a request of another method is
    /// classified as HTTP without a header lookup (each layer of a stack makes a classifier per
    /// request).
    fn make_classifier<B>(&self, req: &Request<B>) -> MeshResponseClassifier {
        if req.method() != Method::POST {
            return MeshResponseClassifier {
                inner: Inner::Http(self.http),
            };
        }
        let inner = match grpc_flavor(req.headers()) {
            Some(GrpcFlavor::Native) => Inner::Grpc(self.grpc),
            Some(GrpcFlavor::Web) => Inner::Grpc(self.grpc.for_grpc_web()),
            None => Inner::Http(self.http),
        };
        MeshResponseClassifier { inner }
    }
}

/// The per-request classifier made by [`MeshClassifier`]: gRPC or HTTP.
///
/// Its end-of-stream half is [`GrpcEosClassifier`], since only gRPC responses ever wait for trailers.
#[derive(Clone, Copy, Debug)]
pub struct MeshResponseClassifier {
    inner: Inner,
}

#[derive(Clone, Copy, Debug)]
enum Inner {
    Http(HttpClassifier),
    Grpc(GrpcClassifier),
}

impl MeshResponseClassifier {
    /// Whether the request was recognised as gRPC (or gRPC-Web).
    pub const fn is_grpc(&self) -> bool {
        matches!(self.inner, Inner::Grpc(_))
    }
}

impl ClassifyResponse for MeshResponseClassifier {
    type FailureClass = FailureClass;
    type ClassifyEos = GrpcEosClassifier;

    fn classify_response<B>(
        self,
        res: &Response<B>,
    ) -> ClassifiedResponse<FailureClass, GrpcEosClassifier> {
        match self.inner {
            Inner::Grpc(grpc) => grpc.classify_response(res),
            Inner::Http(http) => {
                ClassifiedResponse::Ready(http.classify_head(res.status(), res.headers()))
            }
        }
    }

    fn classify_error<E>(self, error: &E) -> FailureClass
    where
        E: fmt::Display + 'static,
    {
        match self.inner {
            Inner::Grpc(grpc) => grpc.classify_error(error),
            Inner::Http(http) => http.classify_error(error),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GrpcFlavor {
    Native,
    Web,
}

/// Whether a request or response is gRPC (or gRPC-Web) by its `content-type`: `application/grpc`,
/// optionally followed by `-web`, a `+subtype` suffix or parameters; case-insensitive. This is the test
/// [`MeshClassifier`] and the error-to-response layer use.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    grpc_flavor(headers).is_some()
}

/// Whether a request is a gRPC (or gRPC-Web) call: a `POST` (every gRPC call is one) whose
/// `content-type` [is gRPC](is_grpc). A request of another method costs no header lookup.
pub fn is_grpc_request<B>(req: &Request<B>) -> bool {
    req.method() == Method::POST && is_grpc(req.headers())
}

/// Recognises gRPC content types: `application/grpc` or `application/grpc-web`, then the end, a
/// `+subtype` suffix, parameters, or (web only) `-text`.
fn grpc_flavor(headers: &HeaderMap) -> Option<GrpcFlavor> {
    let value = headers.get(CONTENT_TYPE)?.as_bytes().trim_ascii();
    let rest = strip_prefix_ignore_case(value, b"application/grpc")?;
    if let Some(web_rest) = strip_prefix_ignore_case(rest, b"-web") {
        return matches!(
            web_rest.first(),
            None | Some(b'+' | b';' | b'-' | b' ' | b'\t')
        )
        .then_some(GrpcFlavor::Web);
    }
    matches!(rest.first(), None | Some(b'+' | b';' | b' ' | b'\t')).then_some(GrpcFlavor::Native)
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}
