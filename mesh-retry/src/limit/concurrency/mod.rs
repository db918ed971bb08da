//! Concurrency limit, fixed or adaptive, that sheds load instead of queueing.
//!
//! A request holds a permit from `poll_ready` until its **response body ends** (or fails, or is
//! dropped): a streaming response keeps using the service after its head was sent. Over the limit
//! the request either fails at once with [`Overloaded`] ([`OverLimit::FailFast`], the default —
//! 503 at a proxy edge) or waits in `poll_ready` ([`OverLimit::Wait`], tower's behaviour).
//!
//! With [`LimitAlgorithm::Vegas`] the limit follows the service's latency: see [`VegasConfig`] for
//! the algorithm, its parameters and why it was preferred to Gradient2. A latency sample is taken
//! when a response body ends normally; requests that fail or are cancelled give no sample.
//!
//! Wait mode wakes every waiting task when a permit is released (no FIFO order): simple and
//! correct when a woken task no longer wants the permit, at the cost of spurious wake-ups when many
//! tasks wait. Bound the waiters with a timeout or a buffer in front.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response};
//! use mesh_core::error::Overloaded;
//! use mesh_retry::limit::{ConcurrencyConfig, ConcurrencyLimitLayer};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let layer = ConcurrencyLimitLayer::new(ConcurrencyConfig::fixed(1)).unwrap();
//! let mut svc = layer.layer(service_fn(|_req: Request<String>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::from("hello")))
//! }));
//!
//! let first = svc.ready().await.unwrap().call(Request::new(String::new())).await.unwrap();
//! // `first`'s body is still open, so its permit is still held: the next request is shed.
//! let err = svc.ready().await.unwrap().call(Request::new(String::new())).await.unwrap_err();
//! assert!(err.is::<Overloaded>());
//! drop(first);
//! assert!(svc.ready().await.unwrap().call(Request::new(String::new())).await.is_ok());
//! # }
//! ```
//!
//! [`Overloaded`]: mesh_core::error::Overloaded

mod body;
mod config;
mod future;
mod layer;
mod limiter;
mod service;
mod vegas;

pub use body::LimitBody;
pub use config::{ConcurrencyConfig, LimitAlgorithm, OverLimit};
pub use future::ResponseFuture;
pub use layer::ConcurrencyLimitLayer;
pub use limiter::LimitHandle;
pub use service::ConcurrencyLimit;
pub use vegas::{Vegas, VegasConfig};
