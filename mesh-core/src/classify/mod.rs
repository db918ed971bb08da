//! One outcome classification for every mesh layer, on top of [`tower_http::classify`].
//!
//! A circuit breaker, a retry policy, outlier ejection and request metrics all need to answer the same
//! question: *did this request fail, and how?* mesh-core answers it once, with classifiers that
//! implement tower-http's [`MakeClassifier`] / [`ClassifyResponse`] / [`ClassifyEos`] traits, so the
//! same value can also be handed to tower-http's `TraceLayer`. Every classifier here has
//! [`FailureClass`] as its failure type; [`Outcome`] folds "success or failure" into one value with
//! the helpers retries and ejection need.
//!
//! - [`HttpClassifier`]: 5xx and errors fail; 429, and 503 with a `Retry-After`, are
//!   [overloaded](FailureClass::Overloaded) and carry the parsed [`RetryAfter`].
//! - [`GrpcClassifier`]: `grpc-status` from the headers (trailers-only responses) or the trailers;
//!   the codes that count as failures form a configurable [`GrpcCodeSet`]; `grpc-retry-pushback-ms`
//!   is carried as a [`Pushback`].
//! - [`MeshClassifier`]: the default; picks one of the two per request from its `content-type`.
//! - [`observe_response`]: wraps a response body so a callback learns the final [`Completion`] when
//!   the body ends (trailers included), fails or is dropped: what load measurement, breakers and
//!   metrics wait for.
//! - [`ErrorKind`]: a stable name for an error returned instead of a response, found by downcasting
//!   to mesh-core's failure types.
//!
//! Nothing here panics on what a peer sends: malformed, non-UTF-8, empty or huge header values are
//! read as documented on each type (mostly: as absent, or as a failure).
//!
//! ```
//! use std::time::{Duration, SystemTime};
//!
//! use http::{Request, Response, StatusCode};
//! use mesh_core::classify::{
//!     ClassifiedResponse, ClassifyEos, ClassifyResponse, FailureClass, GrpcCode, MakeClassifier,
//!     MeshClassifier, Outcome,
//! };
//!
//! let classifier = MeshClassifier::new();
//!
//! // A plain HTTP request answered by "429, come back in 3 seconds".
//! let req = Request::get("http://orders/items").body(()).unwrap();
//! let res = Response::builder()
//!     .status(StatusCode::TOO_MANY_REQUESTS)
//!     .header("retry-after", "3")
//!     .body(())
//!     .unwrap();
//! let ClassifiedResponse::Ready(result) = classifier.make_classifier(&req).classify_response(&res)
//! else {
//!     unreachable!("HTTP responses are classified from the head");
//! };
//! let outcome = Outcome::from(result);
//! assert!(outcome.is_overloaded());
//! assert_eq!(outcome.retry_after(SystemTime::now()), Some(Duration::from_secs(3)));
//!
//! // A gRPC call whose status arrives in the trailers.
//! let req = Request::post("http://orders/orders.Orders/Get")
//!     .header("content-type", "application/grpc")
//!     .body(())
//!     .unwrap();
//! let res = Response::new(());
//! let ClassifiedResponse::RequiresEos(eos) = classifier.make_classifier(&req).classify_response(&res)
//! else {
//!     unreachable!("no grpc-status in the headers");
//! };
//! let mut trailers = http::HeaderMap::new();
//! trailers.insert("grpc-status", "14".parse().unwrap());
//! let outcome = Outcome::from(eos.classify_eos(Some(&trailers)));
//! assert_eq!(outcome.failure().and_then(FailureClass::grpc_code), Some(GrpcCode::UNAVAILABLE));
//! assert_eq!(outcome.kind(), "grpc_status");
//! ```

mod body;
mod error_kind;
mod grpc;
mod http;
mod mesh;
mod outcome;
mod retry_after;

pub use self::http::HttpClassifier;
pub use body::{Completion, ObservedBody, OnCompletion, observe_response};
pub use error_kind::ErrorKind;
pub use grpc::{
    GRPC_RETRY_PUSHBACK_MS, GRPC_STATUS, GrpcClassifier, GrpcCode, GrpcCodeSet, GrpcEosClassifier,
    Pushback,
};
pub use mesh::{MeshClassifier, MeshResponseClassifier, is_grpc, is_grpc_request};
pub use outcome::{FailureClass, Outcome};
pub use retry_after::RetryAfter;

/// tower-http's classification traits, re-exported so that users of this module need no direct
/// tower-http dependency.
pub use tower_http::classify::{ClassifiedResponse, ClassifyEos, ClassifyResponse, MakeClassifier};
