//! The error-to-response layer for proxy edges; the public docs are on [`ErrorResponseLayer`].

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::header::HOST;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::uri::Authority;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use pin_project::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    BoxError, Describe, FailureDetail, Overloaded, RateLimited, describe_failure, find_cause,
};
use crate::body::Body;
use crate::classify::{ErrorKind, GRPC_RETRY_PUSHBACK_MS, GRPC_STATUS, GrpcCode, is_grpc_request};
use crate::log::LogLimiter;

/// The header that names the cause of a response the mesh produced itself.
pub const MESH_ERROR_HEADER: HeaderName = HeaderName::from_static("mesh-error");

/// The header with the short reason ([`FailureDetail`]) of a response the mesh produced itself,
/// when the failure has one (`tls: certificate not valid for the expected identity
/// (IdentityMismatch)`, `connection refused` …).
pub const MESH_ERROR_DETAIL_HEADER: HeaderName = HeaderName::from_static("mesh-error-detail");

const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// What one failure becomes at a proxy edge; see [`ErrorResponseLayer`] for the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureResponse {
    kind: ErrorKind,
    retry_after: Option<Duration>,
    detail: Option<FailureDetail>,
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

    /// The short, non-sensitive reason sent in `mesh-error-detail`, if the failure has one.
    pub fn detail(&self) -> Option<FailureDetail> {
        self.detail
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
            let text = match self.detail {
                Some(detail) => format!("{}\n{detail}\n", self.cause()),
                None => format!("{}\n", self.cause()),
            };
            let mut res = Response::new(Body::from(text));
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
        // Details are fixed ASCII text, so they always make a valid header value.
        if let Some(detail) = self.detail
            && let Ok(value) = HeaderValue::try_from(detail.to_string())
        {
            response
                .headers_mut()
                .insert(MESH_ERROR_DETAIL_HEADER, value);
        }
        response
    }
}

/// Maps an error to its [`FailureResponse`]: the first recognised failure in its cause chain decides
/// (see [`ErrorKind::of_dyn`]); the detail is mesh-core's built-in one ([`describe_failure`]).
pub fn classify_failure(err: &(dyn std::error::Error + 'static)) -> FailureResponse {
    classify_failure_with(err, None)
}

fn classify_failure_with(
    err: &(dyn std::error::Error + 'static),
    describe: Option<Describe>,
) -> FailureResponse {
    let kind = ErrorKind::of_dyn(err);
    let retry_after = match kind {
        ErrorKind::RateLimited => find_cause::<RateLimited>(err).and_then(RateLimited::retry_after),
        ErrorKind::Overloaded => find_cause::<Overloaded>(err).and_then(Overloaded::retry_after),
        _ => None,
    };
    FailureResponse {
        kind,
        retry_after,
        detail: describe_failure(err, describe),
    }
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
/// `POST` requests (every gRPC call is one) whose `content-type` is gRPC's
/// ([`is_grpc`](crate::classify::is_grpc)) get a gRPC trailers-only answer: HTTP
/// 200 with `content-type: application/grpc`, `grpc-status` and `grpc-message` in the headers, as gRPC
/// clients expect. Everyone else gets the status above with a `text/plain` body naming the cause on
/// its first line.
///
/// When the failure is one an allow-list knows, the response also says why, in a
/// `mesh-error-detail` header (both kinds of request) and on the body's second line: a
/// [`FailureDetail`] such as `connection refused`, `timed out`, `http2: stream reset
/// (REFUSED_STREAM)`, or, with mesh-tls's describer set by [`describe_with`](Self::describe_with),
/// `tls: certificate not valid for the expected identity (IdentityMismatch)`. Neither ever carries
/// the error's own text (which may name internal hosts or certificates): details are fixed text
/// compiled into the program, so only they and the cause name leave the process; `grpc-message`
/// stays the cause name.
///
/// Every failure is logged with the request's method and authority, the cause, the detail and the
/// full error: at `warn` when the upstream side failed (`connect`, `upstream`, `transport`,
/// `timeout`), at most one line per cause and detail every 10 s
/// ([`DEFAULT_LOG_INTERVAL`](crate::log::DEFAULT_LOG_INTERVAL)) with a `suppressed` count, so an
/// outage does not flood the log; at `debug` for the refusals the mesh makes on purpose (breaker
/// open, no endpoints, limits, authorization, bad requests), which its metrics already count.
///
/// Clones of the layer, and the services it builds, share the log limiter.
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
#[derive(Clone, Debug, Default)]
pub struct ErrorResponseLayer {
    describe: Option<Describe>,
    log: LogLimiter<LogKey>,
}

/// What the edge's warn lines are limited by: the cause and the detail, both fixed text.
type LogKey = (&'static str, Option<FailureDetail>);

impl ErrorResponseLayer {
    /// The layer, with mesh-core's built-in details only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also asks `describe` for the detail of each error in a failure's chain, before the built-in
    /// allow-list: how a crate mesh-core does not know (mesh-tls's `failure_detail`) explains its
    /// own errors.
    pub fn describe_with(mut self, describe: Describe) -> Self {
        self.describe = Some(describe);
        self
    }
}

impl<S> Layer<S> for ErrorResponseLayer {
    type Service = ErrorResponse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorResponse {
            inner,
            ready_error: None,
            describe: self.describe,
            log: self.log.clone(),
        }
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
    describe: Option<Describe>,
    log: LogLimiter<LogKey>,
}

impl<S: Clone> Clone for ErrorResponse<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            ready_error: None,
            describe: self.describe,
            log: self.log.clone(),
        }
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
    /// Wraps `inner`, as [`ErrorResponseLayer::new`] does.
    pub fn new(inner: S) -> Self {
        ErrorResponseLayer::new().layer(inner)
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

/// What the edge remembers of a request to log its failure: cheap clones (the method is inline for
/// the standard ones; the authority shares the request's bytes).
#[derive(Debug)]
struct RequestInfo {
    grpc: bool,
    method: Method,
    authority: Option<RequestAuthority>,
    describe: Option<Describe>,
    log: LogLimiter<LogKey>,
}

/// The authority a request named, for the log line: the URI's (HTTP/2, absolute form) or the
/// `Host` header; either clone shares the request's bytes.
#[derive(Debug)]
enum RequestAuthority {
    Uri(Authority),
    Host(HeaderValue),
}

impl RequestInfo {
    fn respond(&self, err: BoxError) -> Response<Body> {
        let failure = classify_failure_with(&*err, self.describe);
        let authority = match &self.authority {
            Some(RequestAuthority::Uri(authority)) => authority.as_str(),
            Some(RequestAuthority::Host(value)) => value.to_str().unwrap_or(""),
            None => "",
        };
        let detail = failure.detail().map(tracing::field::display);
        let upstream_failed = matches!(
            failure.kind(),
            ErrorKind::Connect
                | ErrorKind::Upstream { .. }
                | ErrorKind::Transport
                | ErrorKind::Timeout
        );
        if !upstream_failed {
            tracing::debug!(method = %self.method, authority, cause = failure.cause(), detail, error = %err, "answering a failure at the edge");
        } else if let Some(suppressed) = self.log.check((failure.cause(), failure.detail())) {
            tracing::warn!(method = %self.method, authority, cause = failure.cause(), detail, error = %err, suppressed, "answering a failure at the edge");
        }
        failure.into_response(self.grpc)
    }
}

impl<S> ErrorResponse<S> {
    fn request_info<B>(&self, req: &Request<B>) -> RequestInfo {
        let authority = match req.uri().authority() {
            Some(authority) => Some(RequestAuthority::Uri(authority.clone())),
            None => req.headers().get(HOST).cloned().map(RequestAuthority::Host),
        };
        RequestInfo {
            grpc: is_grpc_request(req),
            method: req.method().clone(),
            authority,
            describe: self.describe,
            log: self.log.clone(),
        }
    }
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
        let info = self.request_info(&req);
        let state = match self.ready_error.take() {
            Some(err) => State::Failed {
                response: Some(info.respond(err)),
            },
            None => State::Called {
                future: self.inner.call(req),
            },
        };
        ErrorResponseFuture { state, info }
    }
}

/// Response future of [`ErrorResponse`].
#[pin_project]
#[derive(Debug)]
pub struct ErrorResponseFuture<F> {
    #[pin]
    state: State<F>,
    info: RequestInfo,
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
                Err(e) => this.info.respond(e.into()),
            },
            StateProj::Failed { response } => response
                .take()
                .expect("ErrorResponseFuture polled after completion"),
        };
        Poll::Ready(Ok(response))
    }
}
