//! The failure structs. Each is opaque: fields are private and constructors are functions, so a field
//! can be added later without breaking anyone.

use std::fmt;
use std::time::Duration;

use super::BoxError;

/// Defines a failure that carries nothing: a unit-like struct with `new`, `Default`, `Display`, `Error`.
macro_rules! unit_failure {
    ($(#[$doc:meta])* $name:ident, $msg:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name(());

        impl $name {
            /// The failure.
            pub fn new() -> Self {
                Self(())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($msg)
            }
        }

        impl std::error::Error for $name {}
    };
}

unit_failure!(
    /// A circuit breaker is open: the request was refused without being sent.
    CircuitOpen,
    "circuit breaker is open"
);

unit_failure!(
    /// No endpoint could take the request: discovery has none, or none has been ready for the
    /// balancer's fail-fast time.
    NoEndpoints,
    "no endpoints available"
);

unit_failure!(
    /// Every connection of an HTTP/1.1 client's pool stayed busy for the client's
    /// [`pool_wait_timeout`](crate::client::ClientConfig::pool_wait_timeout): the endpoint is
    /// reachable but saturated, for example by responses that their readers consume slowly. The
    /// request was never sent, so it is safe to try elsewhere. Maps to `503` at a proxy edge, with
    /// `mesh-error: pool_exhausted`, so that it reads differently from a missing endpoint
    /// ([`NoEndpoints`]).
    PoolExhausted,
    "connection pool exhausted"
);

unit_failure!(
    /// A retry or hedge was wanted but the retry budget had none left.
    BudgetExhausted,
    "retry budget exhausted"
);

unit_failure!(
    /// A deadline passed: the request timeout, a per-try timeout, or the connect timeout (then wrapped in
    /// a [`ConnectError`]).
    Timeout,
    "timed out"
);

/// Defines a failure that carries an optional server-requested delay before trying again.
macro_rules! delay_failure {
    ($(#[$doc:meta])* $name:ident, $msg:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            retry_after: Option<Duration>,
        }

        impl $name {
            /// The failure, with no delay advice.
            pub fn new() -> Self {
                Self { retry_after: None }
            }

            /// The failure, advising the caller to wait `delay` before trying again.
            pub fn with_retry_after(delay: Duration) -> Self {
                Self { retry_after: Some(delay) }
            }

            /// How long the caller should wait before trying again, when known.
            pub fn retry_after(&self) -> Option<Duration> {
                self.retry_after
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($msg)?;
                if let Some(d) = self.retry_after {
                    write!(f, " (retry after {} ms)", d.as_millis())?;
                }
                Ok(())
            }
        }

        impl std::error::Error for $name {}
    };
}

delay_failure!(
    /// A rate limit refused the request (maps to 429 at a proxy edge).
    RateLimited,
    "rate limited"
);

delay_failure!(
    /// A concurrency limit or load shedder refused the request, or the peer said it is overloaded
    /// (maps to 503 at a proxy edge).
    Overloaded,
    "overloaded"
);

/// The peer is not allowed: an authorization policy denied it, or its identity could not be verified.
///
/// The reason travels as the [`source`](std::error::Error::source) (mesh-tls puts its typed rejection
/// there); it is for logs, and the error-to-response layer never sends it to the client.
#[derive(Debug, Default)]
pub struct Unauthorized {
    source: Option<BoxError>,
}

impl Unauthorized {
    /// The failure, without a recorded reason.
    pub fn new() -> Self {
        Self { source: None }
    }

    /// The failure, caused by `reason`.
    pub fn with_source(reason: impl Into<BoxError>) -> Self {
        Self {
            source: Some(reason.into()),
        }
    }
}

impl fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unauthorized")
    }
}

impl std::error::Error for Unauthorized {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// The request itself is malformed, so no endpoint was asked: an ambiguous or invalid target
/// (path or host), or a request body whose framing broke while it was being read from the client.
///
/// Maps to `400 Bad Request` at a proxy edge (gRPC `INVALID_ARGUMENT`). It is the client's fault, not
/// the endpoint's: retries, breakers and outlier ejection must not count it against an endpoint. The
/// reason travels as the [`source`](std::error::Error::source), for logs; the response names only the
/// cause (`bad_request`).
#[derive(Debug)]
pub struct BadRequest {
    source: BoxError,
}

impl BadRequest {
    /// The failure, caused by `reason` (a typed error saying what is wrong with the request).
    pub fn new(reason: impl Into<BoxError>) -> Self {
        Self {
            source: reason.into(),
        }
    }
}

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad request: {}", self.source)
    }
}

impl std::error::Error for BadRequest {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// The downstream client's request body failed while it was being forwarded: framing that broke
/// (an invalid chunk size, a body shorter than its `Content-Length`), or a client that went away
/// in the middle of its upload.
///
/// The HTTP client returns it inside a [`BadRequest`], so that a proxy answers `400` instead of
/// blaming the upstream endpoint (`502`); find it with
/// [`find_cause`](super::find_cause). The body's own error is the
/// [`source`](std::error::Error::source).
#[derive(Debug)]
pub struct RequestBodyError {
    source: BoxError,
}

impl RequestBodyError {
    /// The failure, caused by `source` (the error the request body returned).
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

impl fmt::Display for RequestBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request body failed: {}", self.source)
    }
}

impl std::error::Error for RequestBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

unit_failure!(
    /// The request's method is not served here, such as `CONNECT` at a proxy that does not tunnel.
    /// Maps to `405 Method Not Allowed` at a proxy edge (gRPC `UNIMPLEMENTED`).
    MethodNotAllowed,
    "method not allowed"
);

/// A connection to the endpoint could not be made (refused, unreachable, connect timeout, TLS
/// handshake failure). The request was never sent, so it is always safe to retry elsewhere.
#[derive(Debug)]
pub struct ConnectError {
    source: BoxError,
}

impl ConnectError {
    /// The failure, caused by `source` (an `io::Error`, a [`Timeout`], a TLS error …).
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connect failed: {}", self.source)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// The exchange with a connected endpoint failed (connection reset, protocol error, stream refused …).
///
/// [`request_sent`](UpstreamError::request_sent) says whether any of the request may have reached the
/// endpoint: when it is `false` (HTTP/2 `REFUSED_STREAM`, `GOAWAY` above the stream, a pooled connection
/// that closed before the request was written) a retry cannot duplicate work.
#[derive(Debug)]
pub struct UpstreamError {
    source: BoxError,
    request_sent: bool,
}

impl UpstreamError {
    /// The failure of an exchange whose request may have been (partly) sent.
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
            request_sent: true,
        }
    }

    /// The failure of an exchange whose request was certainly not sent.
    pub fn unsent(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
            request_sent: false,
        }
    }

    /// Whether any of the request may have reached the endpoint.
    pub fn request_sent(&self) -> bool {
        self.request_sent
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upstream request failed: {}", self.source)
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
