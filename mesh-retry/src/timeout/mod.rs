//! Request deadlines: an overall timeout, `grpc-timeout` read on the way in and written on the
//! way out, and the [`Deadline`] extension that tells inner layers how much time is left.
//!
//! [`RequestTimeoutLayer`] gives every request a deadline: the configured timeout, shortened by
//! the caller's `grpc-timeout` header and by a [`Deadline`] an outer layer already set. It puts
//! the deadline in the request extensions (or, built with
//! [`hand_deadline_directly`](RequestTimeoutLayer::hand_deadline_directly), hands it to a
//! [`Retry`](crate::retry::Retry) right below through [`TakesDeadline`]), rewrites `grpc-timeout`
//! on gRPC requests with the time remaining, and fails the request with
//! [`mesh_core::error::Timeout`] when the deadline passes.
//!
//! Placed *above* the [retry layer](crate::retry) it bounds the whole exchange, retries and
//! backoff included (the retry layer also stops retrying when a backoff would end past the
//! deadline, and refreshes `grpc-timeout` on each retry). Placed *below* it, it is a per-try
//! timeout; [`RetryPolicy::per_try_timeout`](crate::retry::RetryPolicy::per_try_timeout)
//! does the same without the extra layer.
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response};
//! use mesh_core::error::Timeout;
//! use mesh_retry::timeout::{RequestTimeoutLayer, TimeoutConfig};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let slow = tower::service_fn(|_req: Request<()>| async {
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     Ok::<_, std::convert::Infallible>(Response::new(()))
//! });
//! let service = ServiceBuilder::new()
//!     .layer(RequestTimeoutLayer::new(
//!         TimeoutConfig::default().timeout(Some(Duration::from_secs(2))),
//!     ))
//!     .service(slow);
//! let err = service.oneshot(Request::new(())).await.unwrap_err();
//! assert!(err.is::<Timeout>());
//! # }
//! ```

mod deadline;
mod future;
pub mod grpc_timeout;
mod layer;
mod service;

pub use deadline::Deadline;
pub use future::ResponseFuture;
pub use layer::{RequestTimeoutLayer, TimeoutConfig};
pub use service::{Direct, InExtensions, RequestTimeout, TakesDeadline};
