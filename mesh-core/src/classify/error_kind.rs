//! What kind of error a service returned instead of a response.

use std::any::Any;
use std::error::Error;
use std::fmt;

use crate::error::{
    BadRequest, BoxError, BudgetExhausted, CircuitOpen, ConnectError, MethodNotAllowed,
    NoEndpoints, Overloaded, PoolExhausted, RateLimited, Timeout, Unauthorized, UpstreamError,
};

/// A short, stable name for an error returned instead of a response.
///
/// tower-http's `classify_error` only sees the error as `&E` with `E: Display + 'static`, so the
/// kind is found by downcasting: when `E` is a [`BoxError`] (what every mesh layer returns), one of
/// mesh-core's failure types, an [`std::io::Error`], a [`hyper::Error`] or a
/// [`tokio::time::error::Elapsed`], its cause chain is walked from the outside in and the **first**
/// recognised error decides. So a [`ConnectError`] caused by a [`Timeout`] is [`ErrorKind::Connect`]:
/// the connection timed out. Errors of other types, or chains with nothing recognised, are
/// [`ErrorKind::Transport`]. No allocation happens.
///
/// I/O errors count when their kind says something: `TimedOut` → `Timeout`, `ConnectionRefused` →
/// `Connect`; an `io::Error` that wraps another error is looked through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A deadline passed ([`Timeout`], an I/O or hyper timeout, tokio's `Elapsed`).
    Timeout,
    /// No connection could be made ([`ConnectError`], connection refused).
    Connect,
    /// The exchange with a connected endpoint failed ([`UpstreamError`]).
    Upstream {
        /// Whether any of the request may have reached the endpoint
        /// ([`UpstreamError::request_sent`]).
        request_sent: bool,
    },
    /// A circuit breaker refused the request ([`CircuitOpen`]).
    CircuitOpen,
    /// No endpoint could take the request ([`NoEndpoints`]).
    NoEndpoints,
    /// The endpoint's HTTP/1.1 connections all stayed busy for the client's pool wait
    /// ([`PoolExhausted`]): the endpoint is there but saturated.
    PoolExhausted,
    /// The retry budget was exhausted ([`BudgetExhausted`]).
    BudgetExhausted,
    /// A rate limit refused the request ([`RateLimited`]).
    RateLimited,
    /// A concurrency limit or load shedder refused the request ([`Overloaded`]).
    Overloaded,
    /// The peer was not allowed ([`Unauthorized`]).
    Unauthorized,
    /// The request itself was malformed ([`BadRequest`]): the client's fault, not an endpoint's.
    BadRequest,
    /// The request's method is not served ([`MethodNotAllowed`]).
    MethodNotAllowed,
    /// Any other error.
    Transport,
}

impl ErrorKind {
    /// The kind of `error`, for any error type (see the type docs for what is recognised).
    pub fn of<E: 'static>(error: &E) -> Self {
        as_dyn_error(error).map_or(Self::Transport, Self::of_dyn)
    }

    /// The kind of a type-erased error, by walking its cause chain.
    ///
    /// One exception to "outermost first": a [`BadRequest`] anywhere in the chain decides, because a
    /// request that broke on the client's side (a malformed request body, say) stays the client's
    /// fault even when the upstream exchange failed because of it.
    pub fn of_dyn(error: &(dyn Error + 'static)) -> Self {
        if chain(error).any(|err| err.is::<BadRequest>()) {
            return Self::BadRequest;
        }
        chain(error)
            .find_map(Self::recognise)
            .unwrap_or(Self::Transport)
    }

    fn recognise(err: &(dyn Error + 'static)) -> Option<Self> {
        if err.is::<MethodNotAllowed>() {
            return Some(Self::MethodNotAllowed);
        }
        if err.is::<Timeout>() || err.is::<tokio::time::error::Elapsed>() {
            return Some(Self::Timeout);
        }
        if err.is::<ConnectError>() {
            return Some(Self::Connect);
        }
        if let Some(upstream) = err.downcast_ref::<UpstreamError>() {
            return Some(Self::Upstream {
                request_sent: upstream.request_sent(),
            });
        }
        if err.is::<CircuitOpen>() {
            return Some(Self::CircuitOpen);
        }
        if err.is::<NoEndpoints>() {
            return Some(Self::NoEndpoints);
        }
        if err.is::<PoolExhausted>() {
            return Some(Self::PoolExhausted);
        }
        if err.is::<BudgetExhausted>() {
            return Some(Self::BudgetExhausted);
        }
        if err.is::<RateLimited>() {
            return Some(Self::RateLimited);
        }
        if err.is::<Overloaded>() {
            return Some(Self::Overloaded);
        }
        if err.is::<Unauthorized>() {
            return Some(Self::Unauthorized);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::TimedOut => Some(Self::Timeout),
                std::io::ErrorKind::ConnectionRefused => Some(Self::Connect),
                _ => None,
            };
        }
        match err.downcast_ref::<hyper::Error>() {
            Some(hyper) if hyper.is_timeout() => Some(Self::Timeout),
            _ => None,
        }
    }

    /// Whether an error of this kind says something about the endpoint the request went to, so
    /// that outlier ejection and load estimates should count it.
    ///
    /// `false` for failures of the request itself ([`BadRequest`](Self::BadRequest): a body that
    /// broke on the client's side; [`MethodNotAllowed`](Self::MethodNotAllowed)) and for
    /// [`PoolExhausted`](Self::PoolExhausted), which says the endpoint is busy, not broken, and
    /// fails at once without sending anything (counting its near-zero latency would make the
    /// saturated endpoint look fast). `true` for every other kind.
    pub const fn is_endpoint_failure(self) -> bool {
        !matches!(
            self,
            Self::BadRequest | Self::MethodNotAllowed | Self::PoolExhausted
        )
    }

    /// A short, stable, lower-case name: `"timeout"`, `"connect"`, `"upstream"`, `"circuit_open"`,
    /// `"no_endpoints"`, `"pool_exhausted"`, `"budget_exhausted"`, `"rate_limited"`, `"overloaded"`, `"unauthorized"`,
    /// `"bad_request"`, `"method_not_allowed"`, `"transport"`. Suitable as a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Upstream { .. } => "upstream",
            Self::CircuitOpen => "circuit_open",
            Self::NoEndpoints => "no_endpoints",
            Self::PoolExhausted => "pool_exhausted",
            Self::BudgetExhausted => "budget_exhausted",
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::Unauthorized => "unauthorized",
            Self::BadRequest => "bad_request",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Transport => "transport",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `error` and its causes, outermost first. `io::Error::source` skips the error it wraps, so an
/// `io::Error` is followed by that error itself.
fn chain<'a>(error: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&err: &&'a (dyn Error + 'static)| match err
        .downcast_ref::<std::io::Error>()
    {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
        None => err.source(),
    })
}

/// Views `error` as a `dyn Error` when its concrete type is one we know to be an error.
fn as_dyn_error<E: 'static>(error: &E) -> Option<&(dyn Error + 'static)> {
    let any = error as &dyn Any;
    if let Some(boxed) = any.downcast_ref::<BoxError>() {
        return Some(&**boxed);
    }
    if let Some(boxed) = any.downcast_ref::<Box<dyn Error + Send + 'static>>() {
        return Some(&**boxed);
    }
    if let Some(boxed) = any.downcast_ref::<Box<dyn Error + 'static>>() {
        return Some(&**boxed);
    }
    macro_rules! concrete {
        ($($ty:ty),* $(,)?) => {
            $(
                if let Some(err) = any.downcast_ref::<$ty>() {
                    return Some(err);
                }
            )*
        };
    }
    concrete!(
        Timeout,
        ConnectError,
        UpstreamError,
        CircuitOpen,
        NoEndpoints,
        PoolExhausted,
        BudgetExhausted,
        RateLimited,
        Overloaded,
        Unauthorized,
        BadRequest,
        MethodNotAllowed,
        std::io::Error,
        hyper::Error,
        tokio::time::error::Elapsed,
    );
    None
}
