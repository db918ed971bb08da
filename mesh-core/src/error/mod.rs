//! Failures as types, and the layer that turns them into responses at a proxy edge.
//!
//! Every mesh layer fails with a [`BoxError`] whose concrete type says what happened: one small opaque
//! struct per failure ([`CircuitOpen`], [`NoEndpoints`], [`Timeout`] …). Callers test with
//! `err.is::<Timeout>()`, or with [`is_caused_by`] when the failure may be wrapped by an outer error.
//! The structs are opaque (private fields, constructors) so they can grow without breaking users.
//!
//! At a proxy edge, [`ErrorResponseLayer`] maps each failure to exactly one HTTP status, or for gRPC
//! requests to a `grpc-status`, and names the cause in a `mesh-error` header, with a short reason
//! ([`FailureDetail`]) in `mesh-error-detail` when an allow-list knows the error. See its docs for
//! the table.
//!
//! ```
//! use mesh_core::error::{is_caused_by, BoxError, ConnectError, Timeout};
//!
//! let err: BoxError = Box::new(ConnectError::new(Timeout::new()));
//! assert!(err.is::<ConnectError>());
//! assert!(is_caused_by::<Timeout>(&*err));
//! ```

mod config;
mod detail;
mod failures;
mod response;

pub use config::ConfigError;
pub use detail::{Describe, FailureDetail, describe_failure};
pub use failures::{
    BadRequest, BudgetExhausted, CircuitOpen, ConnectError, MethodNotAllowed, NoEndpoints,
    Overloaded, PoolExhausted, RateLimited, RequestBodyError, Timeout, Unauthorized, UpstreamError,
};
pub use response::{
    ErrorResponse, ErrorResponseFuture, ErrorResponseLayer, FailureResponse,
    MESH_ERROR_DETAIL_HEADER, MESH_ERROR_HEADER, classify_failure,
};

/// The boxed error every mesh layer returns, as in tower.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Whether `err`, or any error in its [`source`](std::error::Error::source) chain, is a `T`.
///
/// Mesh layers box their failures, and outer layers may wrap them (a [`ConnectError`] caused by a
/// [`Timeout`], say), so `err.is::<T>()` only sees the outermost one; this looks at all of them.
pub fn is_caused_by<T: std::error::Error + 'static>(
    err: &(dyn std::error::Error + 'static),
) -> bool {
    find_cause::<T>(err).is_some()
}

/// The first `T` in `err`'s cause chain, `err` itself included.
pub fn find_cause<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        next = e.source();
    }
    None
}
