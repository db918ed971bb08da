//! The outcome of one request, as every mesh layer sees it.

use std::fmt;
use std::time::{Duration, SystemTime};

use http::StatusCode;

use super::{ErrorKind, GrpcCode, Pushback, RetryAfter};

/// Why a request counts as failed: the `FailureClass` of every mesh-core classifier.
///
/// Circuit breakers and outlier ejection count failures, retries look at
/// [`is_overloaded`](Self::is_overloaded) and the server's delay advice, metrics use
/// [`kind`](Self::kind) as a label. It implements [`Display`](fmt::Display) and [`Error`](std::error::Error), so it also
/// works with tower-http's `TraceLayer` defaults and can be boxed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureClass {
    /// An HTTP server error (5xx, or a status beyond the classes HTTP defines) that is not
    /// [`Overloaded`](Self::Overloaded).
    Status(StatusCode),
    /// The server is shedding load: a 429, or a 503 that says when to come back. The server is not
    /// broken; a caller should slow down rather than eject it.
    Overloaded {
        /// The response status (429 or 503).
        status: StatusCode,
        /// The server's `Retry-After`, when present and well-formed (always `Some` for a 503).
        retry_after: Option<RetryAfter>,
    },
    /// A gRPC status deemed a failure by the classifier, or a gRPC protocol violation.
    Grpc {
        /// The code received (or `UNKNOWN` / `INTERNAL` for a malformed / missing status).
        code: GrpcCode,
        /// The server's `grpc-retry-pushback-ms`, when present.
        pushback: Option<Pushback>,
    },
    /// The service returned an error instead of a response.
    Error(ErrorKind),
}

impl FailureClass {
    /// A short, stable name for metrics (an `error.type`-style label): `"http_status"`,
    /// `"overloaded"`, `"grpc_status"`, or the [`ErrorKind::as_str`] of an error.
    ///
    /// Low-cardinality on purpose; the status or code itself is available from
    /// [`status`](Self::status) and [`grpc_code`](Self::grpc_code).
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Status(_) => "http_status",
            Self::Overloaded { .. } => "overloaded",
            Self::Grpc { .. } => "grpc_status",
            Self::Error(kind) => kind.as_str(),
        }
    }

    /// The HTTP status, for [`Status`](Self::Status) and [`Overloaded`](Self::Overloaded).
    pub const fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status(status) | Self::Overloaded { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The gRPC code, for [`Grpc`](Self::Grpc).
    pub const fn grpc_code(&self) -> Option<GrpcCode> {
        match self {
            Self::Grpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The error kind, for [`Error`](Self::Error).
    pub const fn error_kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Error(kind) => Some(*kind),
            _ => None,
        }
    }

    /// Whether the server said it is overloaded ([`Overloaded`](Self::Overloaded)).
    ///
    /// gRPC statuses never count: `RESOURCE_EXHAUSTED` is usually a per-client quota, and gRPC's way
    /// to ask for a slower retry is [`Pushback`], which [`retry_after`](Self::retry_after) reports.
    pub const fn is_overloaded(&self) -> bool {
        matches!(self, Self::Overloaded { .. })
    }

    /// How long the server asked the caller to wait before trying again, counted from `now` (used
    /// only for an HTTP-date `Retry-After`; pass the time the response was received).
    ///
    /// From `Retry-After` for [`Overloaded`](Self::Overloaded), from a [`Pushback::Delay`] for
    /// [`Grpc`](Self::Grpc); `None` otherwise.
    pub fn retry_after(&self, now: SystemTime) -> Option<Duration> {
        match self {
            Self::Overloaded {
                retry_after: Some(retry_after),
                ..
            } => Some(retry_after.delay_from(now)),
            Self::Grpc {
                pushback: Some(pushback),
                ..
            } => pushback.delay(),
            _ => None,
        }
    }

    /// Whether the server asked not to retry at all ([`Pushback::DoNotRetry`]).
    pub const fn retry_forbidden(&self) -> bool {
        matches!(
            self,
            Self::Grpc {
                pushback: Some(Pushback::DoNotRetry),
                ..
            }
        )
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(f, "HTTP status {status}"),
            Self::Overloaded {
                status,
                retry_after,
            } => {
                write!(f, "overloaded (HTTP status {status}")?;
                match retry_after {
                    Some(RetryAfter::Delay(delay)) => {
                        write!(f, ", retry after {}s)", delay.as_secs())
                    }
                    Some(RetryAfter::Date(at)) => {
                        write!(f, ", retry after {})", httpdate::HttpDate::from(*at))
                    }
                    None => f.write_str(")"),
                }
            }
            Self::Grpc { code, pushback } => {
                write!(f, "gRPC status {code}")?;
                match pushback {
                    Some(Pushback::Delay(delay)) => {
                        write!(f, ", pushback {} ms", delay.as_millis())
                    }
                    Some(Pushback::DoNotRetry) => f.write_str(", do not retry"),
                    None => Ok(()),
                }
            }
            Self::Error(kind) => write!(f, "error: {kind}"),
        }
    }
}

impl std::error::Error for FailureClass {}

/// The outcome of one request: success, or failure with its [`FailureClass`].
///
/// Middleware turns what a tower-http classifier returns — `Result<(), FailureClass>` from
/// `ClassifiedResponse::Ready` or `classify_eos`, a `FailureClass` from `classify_error` — into one
/// value with `Outcome::from`, then asks it the questions breakers, retries and metrics need.
///
/// ```
/// use mesh_core::classify::{ErrorKind, FailureClass, Outcome};
///
/// let ok = Outcome::from(Ok::<(), FailureClass>(()));
/// assert!(ok.is_success());
/// assert_eq!(ok.kind(), "success");
///
/// let failed = Outcome::from(FailureClass::Error(ErrorKind::Timeout));
/// assert!(failed.is_failure());
/// assert_eq!(failed.kind(), "timeout");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The request succeeded (as far as the classifier is concerned).
    Success,
    /// The request failed.
    Failure(FailureClass),
}

impl Outcome {
    /// Whether the request succeeded.
    pub const fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }

    /// Whether the request failed.
    pub const fn is_failure(&self) -> bool {
        matches!(self, Self::Failure(_))
    }

    /// The failure, if any.
    pub const fn failure(&self) -> Option<&FailureClass> {
        match self {
            Self::Success => None,
            Self::Failure(class) => Some(class),
        }
    }

    /// Whether the server said it is overloaded ([`FailureClass::is_overloaded`]).
    pub const fn is_overloaded(&self) -> bool {
        match self {
            Self::Success => false,
            Self::Failure(class) => class.is_overloaded(),
        }
    }

    /// The server's requested delay before a retry ([`FailureClass::retry_after`]).
    pub fn retry_after(&self, now: SystemTime) -> Option<Duration> {
        self.failure().and_then(|class| class.retry_after(now))
    }

    /// Whether the server asked not to retry ([`FailureClass::retry_forbidden`]).
    pub const fn retry_forbidden(&self) -> bool {
        match self {
            Self::Success => false,
            Self::Failure(class) => class.retry_forbidden(),
        }
    }

    /// `"success"`, or the failure's [`FailureClass::kind`]: a stable metric label.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure(class) => class.kind(),
        }
    }

    /// Back to the tower-http shape.
    pub fn into_result(self) -> Result<(), FailureClass> {
        match self {
            Self::Success => Ok(()),
            Self::Failure(class) => Err(class),
        }
    }
}

impl From<Result<(), FailureClass>> for Outcome {
    fn from(result: Result<(), FailureClass>) -> Self {
        match result {
            Ok(()) => Self::Success,
            Err(class) => Self::Failure(class),
        }
    }
}

impl From<FailureClass> for Outcome {
    fn from(class: FailureClass) -> Self {
        Self::Failure(class)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Success => f.write_str("success"),
            Self::Failure(class) => write!(f, "failure: {class}"),
        }
    }
}
