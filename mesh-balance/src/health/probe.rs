//! One probe: build the request, send it through the probe service, judge the response.

use std::fmt;
use std::future::poll_fn;
use std::pin::pin;

use bytes::{Buf, BufMut, BytesMut};
use http::header::{CONTENT_TYPE, HeaderValue, TE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body as HttpBody;
use mesh_core::classify::{GRPC_STATUS, GrpcCode};
use mesh_core::{Body, BoxError};
use tower_service::Service;

use super::grpc::{self, Verdict};
use super::{GrpcCheck, HealthCheck, HttpCheck};

/// The most of an HTTP check's response body that is read (and discarded) so the connection can
/// be reused; past it the body is dropped, which only costs an HTTP/1.1 connection.
const MAX_HTTP_BODY: usize = 64 * 1024;

/// The largest gRPC health response accepted: a `HealthCheckResponse` is 7 bytes framed.
const MAX_GRPC_BODY: usize = 4 * 1024;

/// Why one probe failed. Logged, and named in the probe counter's `result` attribute.
#[derive(Debug)]
pub(crate) enum ProbeFailure {
    /// No verdict within the configured timeout.
    Timeout,
    /// The probe service failed (not ready, connect error, reset, body error).
    Error(BoxError),
    /// An HTTP status outside the healthy range (or not 200 for gRPC).
    Status(StatusCode),
    /// A gRPC status other than `OK`.
    GrpcStatus(GrpcCode),
    /// A well-formed gRPC health response that is not `SERVING`.
    NotServing(u64),
    /// A gRPC response that breaks the protocol.
    Malformed(&'static str),
}

impl ProbeFailure {
    /// The value of the probe counter's `result` attribute.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Error(_) => "error",
            Self::Status(_) | Self::GrpcStatus(_) => "status",
            Self::NotServing(_) => "not_serving",
            Self::Malformed(_) => "malformed",
        }
    }
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out"),
            Self::Error(e) => write!(f, "failed: {e}"),
            Self::Status(status) => write!(f, "answered HTTP {status}"),
            Self::GrpcStatus(code) => write!(f, "answered grpc-status {}", code.name()),
            Self::NotServing(status) => write!(f, "answered serving status {status}, not SERVING"),
            Self::Malformed(reason) => write!(f, "answered a malformed gRPC response: {reason}"),
        }
    }
}

/// Sends one probe through `probe` and judges the answer. Not bounded in time: the caller wraps
/// it in the timeout, and dropping the future cancels the request.
pub(crate) async fn probe<P, B>(probe: &mut P, check: &HealthCheck) -> Result<(), ProbeFailure>
where
    P: Service<Request<Body>, Response = Response<B>>,
    P::Error: Into<BoxError>,
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    poll_fn(|cx| probe.poll_ready(cx))
        .await
        .map_err(|e| ProbeFailure::Error(e.into()))?;
    let response = probe
        .call(request(check))
        .await
        .map_err(|e| ProbeFailure::Error(e.into()))?;
    match check {
        HealthCheck::Http(http) => judge_http(http, response).await,
        HealthCheck::Grpc(_) => judge_grpc(response).await,
    }
}

fn request(check: &HealthCheck) -> Request<Body> {
    let mut request = Request::new(Body::empty());
    match check {
        HealthCheck::Http(HttpCheck { path, .. }) => {
            *request.uri_mut() = path.clone().into();
        }
        HealthCheck::Grpc(GrpcCheck { service }) => {
            *request.method_mut() = Method::POST;
            *request.uri_mut() = http::Uri::from_static(grpc::CHECK_PATH);
            let headers = request.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            headers.insert(TE, HeaderValue::from_static("trailers"));
            *request.body_mut() = Body::from(grpc::encode_request(service));
        }
    }
    request
}

async fn judge_http<B>(check: &HttpCheck, response: Response<B>) -> Result<(), ProbeFailure>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let status = response.status();
    if !check.healthy_statuses.contains(&status.as_u16()) {
        return Err(ProbeFailure::Status(status));
    }
    read_body(response.into_body(), MAX_HTTP_BODY, false)
        .await
        .map_err(ProbeFailure::Error)?;
    Ok(())
}

async fn judge_grpc<B>(response: Response<B>) -> Result<(), ProbeFailure>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    if response.status() != StatusCode::OK {
        return Err(ProbeFailure::Status(response.status()));
    }
    // A trailers-only response carries its status in the headers.
    let in_headers = grpc_status(response.headers())?;
    if let Some(code) = in_headers
        && !code.is_ok()
    {
        return Err(ProbeFailure::GrpcStatus(code));
    }
    let body = read_body(response.into_body(), MAX_GRPC_BODY, true)
        .await
        .map_err(ProbeFailure::Error)?;
    if body.overflow {
        return Err(ProbeFailure::Malformed("response larger than 4 KiB"));
    }
    let in_trailers = match &body.trailers {
        Some(trailers) => grpc_status(trailers)?,
        None => None,
    };
    match in_trailers.or(in_headers) {
        None => return Err(ProbeFailure::Malformed("no grpc-status")),
        Some(code) if !code.is_ok() => return Err(ProbeFailure::GrpcStatus(code)),
        Some(_) => {}
    }
    match grpc::decode_response(&body.data) {
        Verdict::Serving => Ok(()),
        Verdict::NotServing(status) => Err(ProbeFailure::NotServing(status)),
        Verdict::Malformed(reason) => Err(ProbeFailure::Malformed(reason)),
    }
}

fn grpc_status(headers: &HeaderMap) -> Result<Option<GrpcCode>, ProbeFailure> {
    match headers.get(GRPC_STATUS) {
        None => Ok(None),
        Some(value) => GrpcCode::parse(value.as_bytes())
            .map(Some)
            .ok_or(ProbeFailure::Malformed("unreadable grpc-status")),
    }
}

struct ReadBody {
    data: BytesMut,
    trailers: Option<HeaderMap>,
    overflow: bool,
}

/// Reads `body` to its end, keeping the data when `keep`; stops early (`overflow`) once more than
/// `max` bytes arrived.
async fn read_body<B>(body: B, max: usize, keep: bool) -> Result<ReadBody, BoxError>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let mut body = pin!(body);
    let mut read = ReadBody {
        data: BytesMut::new(),
        trailers: None,
        overflow: false,
    };
    let mut seen = 0usize;
    while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(Into::into)?;
        match frame.into_data() {
            Ok(mut data) => {
                seen = seen.saturating_add(data.remaining());
                if seen > max {
                    read.overflow = true;
                    return Ok(read);
                }
                if keep {
                    read.data.put(&mut data);
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    read.trailers = Some(trailers);
                }
            }
        }
    }
    Ok(read)
}
