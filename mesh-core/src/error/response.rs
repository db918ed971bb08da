//! The error-to-response layer for proxy edges; the public docs are on [`ErrorResponseLayer`].

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use pin_project::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{BoxError, Overloaded, RateLimited, find_cause};
use crate::body::Body;
use crate::classify::{ErrorKind, GRPC_RETRY_PUSHBACK_MS, GRPC_STATUS, GrpcCode, is_grpc};

/// The header that names the cause of a response the mesh produced itself.
pub const MESH_ERROR_HEADER: HeaderName = HeaderName::from_static("mesh-error");

const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// What one failure becomes at a proxy edge; see [`ErrorResponseLayer`] for the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureResponse {
    kind: ErrorKind,
    retry_after: Option<Duration>,
}

impl FailureResponse {
    /// The error kind the response was chosen by.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status for plain HTTP requests.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Unauthorized => StatusCode::FORBIDDEN,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::CircuitOpen
            | ErrorKind::NoEndpoints
            | ErrorKind::PoolExhausted
            | ErrorKind::BudgetExhausted
            | ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            // Connect, Upstream, Transport, and kinds added later: nothing valid came from upstream.
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// The gRPC status code for gRPC requests.
    pub fn grpc_status(&self) -> GrpcCode {
        match self.kind {
            ErrorKind::Timeout => GrpcCode::DEADLINE_EXCEEDED,
            ErrorKind::Unauthorized => GrpcCode::PERMISSION_DENIED,
            ErrorKind::RateLimited => GrpcCode::RESOURCE_EXHAUSTED,
            ErrorKind::BadRequest => GrpcCode::INVALID_ARGUMENT,
            ErrorKind::MethodNotAllowed => GrpcCode::UNIMPLEMENTED,
            _ => GrpcCode::UNAVAILABLE,
        }
    }

    /// The short, stable cause name sent in the `mesh-error` header ([`ErrorKind::as_str`]).
    pub fn cause(&self) -> &'static str {
        self.kind.as_str()
    }

    /// The delay the client is told to wait, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Builds the response: a trailers-only gRPC answer when `grpc` is true, else a plain one.
    pub fn into_response(self, grpc: bool) -> Response<Body> {
        let cause = HeaderValue::from_static(self.cause());
        let mut response = if grpc {
            let mut res = Response::new(Body::empty());
            let headers = res.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            headers.insert(GRPC_STATUS, HeaderValue::from(self.grpc_status().value()));
            // Cause names are plain tokens, so they need no percent-encoding as a grpc-message.
            headers.insert(GRPC_MESSAGE, cause.clone());
            if let Some(delay) = self.retry_after {
                let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                headers.insert(GRPC_RETRY_PUSHBACK_MS, HeaderValue::from(ms));
            }
            res
        } else {
            let mut res = Response::new(Body::from(format!("{}\n", self.cause())));
            *res.status_mut() = self.status();
            let headers = res.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            if let Some(delay) = self.retry_after {
                // Retry-After is whole seconds (RFC 9110 §10.2.3); round up so clients never come early.
                let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
                headers.insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            res
        };
        if self.kind == ErrorKind::MethodNotAllowed && !grpc {
            response.headers_mut().insert(
                http::header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH"),
            );
        }
        response.headers_mut().insert(MESH_ERROR_HEADER, cause);
        response
    }
}

/// Maps an error to its [`FailureResponse`]: the first recognised failure in its cause chain decides
/// (see [`ErrorKind::of_dyn`]).
pub fn classify_failure(err: &(dyn std::error::Error + 'static)) -> FailureResponse {
    let kind = ErrorKind::of_dyn(err);
    let retry_after = match kind {
        ErrorKind::RateLimited => find_cause::<RateLimited>(err).and_then(RateLimited::retry_after),
        ErrorKind::Overloaded => find_cause::<Overloaded>(err).and_then(Overloaded::retry_after),
        _ => None,
    };
    FailureResponse { kind, retry_after }
}

/// The error-to-response layer for proxy edges.
///
/// A proxy cannot return a Rust error to its client; it must answer. [`ErrorResponseLayer`] sits at the
/// outermost edge and turns every error of the stack below it into a response, by the first failure
/// type found in the error's cause chain (outermost first):
///
/// | failure (first found)           | HTTP | `grpc-status`          | `mesh-error`       |
/// |---------------------------------|------|------------------------|--------------------|
/// | [`CircuitOpen`]                 | 503  | 14 `UNAVAILABLE`       | `circuit_open`     |
/// | [`NoEndpoints`]                 | 503  | 14 `UNAVAILABLE`       | `no_endpoints`     |
/// | [`PoolExhausted`]               | 503  | 14 `UNAVAILABLE`       | `pool_exhausted`   |
/// | [`BudgetExhausted`]             | 503  | 14 `UNAVAILABLE`       | `budget_exhausted` |
/// | [`Overloaded`]                  | 503  | 14 `UNAVAILABLE`       | `overloaded`       |
/// | [`Timeout`] (or an I/O timeout) | 504  | 4 `DEADLINE_EXCEEDED`  | `timeout`          |
/// | [`Unauthorized`]                | 403  | 7 `PERMISSION_DENIED`  | `unauthorized`     |
/// | [`RateLimited`]                 | 429  | 8 `RESOURCE_EXHAUSTED` | `rate_limited`     |
/// | [`BadRequest`]                  | 400  | 3 `INVALID_ARGUMENT`   | `bad_request`      |
/// | [`MethodNotAllowed`]            | 405  | 12 `UNIMPLEMENTED`     | `method_not_allowed` |
/// | [`ConnectError`] (or refused)   | 502  | 14 `UNAVAILABLE`       | `connect`          |
/// | [`UpstreamError`]               | 502  | 14 `UNAVAILABLE`       | `upstream`         |
/// | anything else                   | 502  | 14 `UNAVAILABLE`       | `transport`        |
///
/// The chain is read by [`ErrorKind::of_dyn`], and the `mesh-error` values are [`ErrorKind::as_str`],
/// so the header, metrics' `error.type` and logs use one vocabulary. An unrecognised error is a 502:
/// at a proxy edge it means no valid response came back from upstream (gRPC maps HTTP 502 to
/// `UNAVAILABLE` too).
///
/// A [`ConnectError`] caused by a [`Timeout`] is a `connect` 502, not a 504: the outer type says
/// what the request experienced (it never reached an endpoint).
///
/// When the failure carries a delay ([`RateLimited`], [`Overloaded`]), HTTP responses get
/// `Retry-After` (whole seconds, rounded up) and gRPC responses `grpc-retry-pushback-ms`.
///
/// Requests whose `content-type` starts with `application/grpc` get a gRPC trailers-only answer: HTTP
/// 200 with `content-type: application/grpc`, `grpc-status` and `grpc-message` in the headers, as gRPC
/// clients expect. Everyone else gets the status above with a one-line `text/plain` body naming the
/// cause. Neither ever carries the error's own text (which may name internal hosts or certificates):
/// only the short cause name leaves the process. The full error is logged at `debug` level.
///
/// Holds no configuration today; it exists so the edge reads as a layer in a `ServiceBuilder`.
///
/// [`CircuitOpen`]: super::CircuitOpen
/// [`NoEndpoints`]: super::NoEndpoints
/// [`PoolExhausted`]: super::PoolExhausted
/// [`BudgetExhausted`]: super::BudgetExhausted
/// [`Overloaded`]: super::Overloaded
/// [`Timeout`]: super::Timeout
/// [`Unauthorized`]: super::Unauthorized
/// [`RateLimited`]: super::RateLimited
/// [`ConnectError`]: super::ConnectError
/// [`UpstreamError`]: super::UpstreamError
/// [`BadRequest`]: super::BadRequest
/// [`MethodNotAllowed`]: super::MethodNotAllowed
///
/// A [`BadRequest`] anywhere in the chain wins over the transport errors around it: a request body
/// that broke while it was read from the client is the client's fault (`400`), even when the
/// upstream exchange failed because of it. A `405` carries an `Allow` header listing the standard
/// methods other than `CONNECT`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorResponseLayer(());

impl ErrorResponseLayer {
    /// The layer.
    pub fn new() -> Self {
        Self(())
    }
}

impl<S> Layer<S> for ErrorResponseLayer {
    type Service = ErrorResponse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorResponse::new(inner)
    }
}

/// The service built by [`ErrorResponseLayer`]: never fails, answers every error with a response.
///
/// If the inner service fails in `poll_ready`, this service still reports ready and answers the next
/// request with that failure's response, without calling the inner service; the following
/// `poll_ready` asks the inner service again. `Clone` gives a clone without a pending failure.
pub struct ErrorResponse<S> {
    inner: S,
    ready_error: Option<BoxError>,
}

impl<S: Clone> Clone for ErrorResponse<S> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for ErrorResponse<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorResponse")
            .field("inner", &self.inner)
            .field("ready_error", &self.ready_error.is_some())
            .finish()
    }
}

impl<S> ErrorResponse<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            ready_error: None,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn respond(err: BoxError, grpc: bool) -> Response<Body> {
    let failure = classify_failure(&*err);
    tracing::debug!(error = %err, cause = failure.cause(), "answering a failure at the edge");
    failure.into_response(grpc)
}

impl<S, B, ResBody> Service<Request<B>> for ErrorResponse<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ErrorResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.ready_error.is_none()
            && let Err(e) = ready!(self.inner.poll_ready(cx))
        {
            self.ready_error = Some(e.into());
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let grpc = is_grpc(req.headers());
        let state = match self.ready_error.take() {
            Some(err) => State::Failed {
                response: Some(respond(err, grpc)),
            },
            None => State::Called {
                future: self.inner.call(req),
            },
        };
        ErrorResponseFuture { state, grpc }
    }
}

/// Response future of [`ErrorResponse`].
#[pin_project]
#[derive(Debug)]
pub struct ErrorResponseFuture<F> {
    #[pin]
    state: State<F>,
    grpc: bool,
}

#[pin_project(project = StateProj)]
#[derive(Debug)]
enum State<F> {
    Called {
        #[pin]
        future: F,
    },
    Failed {
        response: Option<Response<Body>>,
    },
}

impl<F, ResBody, E> Future for ErrorResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: Into<BoxError>,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.state.project() {
            StateProj::Called { future } => match ready!(future.poll(cx)) {
                Ok(res) => res.map(Body::new),
                Err(e) => respond(e.into(), *this.grpc),
            },
            StateProj::Failed { response } => response
                .take()
                .expect("ErrorResponseFuture polled after completion"),
        };
        Poll::Ready(Ok(response))
    }
}
