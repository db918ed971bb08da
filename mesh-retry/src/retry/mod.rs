//! Retries driven by mesh-core's classifier, bounded by a budget, with a replayable body.
//!
//! [`RetryLayer`] wraps a service; each request is sent, its outcome classified (by
//! [`MeshClassifier`](mesh_core::classify::MeshClassifier) unless told otherwise) and, when the
//! [`RetryPolicy`] says the failure is worth another try, the request is sent again after a
//! jittered [backoff](ExponentialBackoff) — if the [budget](crate::budget) allows and the body can
//! be [replayed](crate::body::ReplayBody). When any of those says no, the caller gets the *last
//! failure itself* (the response or the error), never a synthetic one.
//!
//! The policy in short (details on [`RetryPolicy`]): requests that were never sent are always
//! retried, and so are gRPC calls answered `UNAVAILABLE` (or `RESOURCE_EXHAUSTED` with a pushback
//! delay), which say the call was not processed; others only when idempotent (RFC 9110), of a
//! method the policy allows, or [marked](Retryable); 5xx statuses and gRPC codes from
//! configurable sets; 429/503 after the server's `Retry-After` or
//! `grpc-retry-pushback-ms`, if that is short enough; 3 attempts at most by default.
//!
//! Every attempt of a request goes to the same inner service instance, and each retry carries
//! mesh-core's [`AvoidTried`](mesh_core::attempts::AvoidTried) marker. mesh-balance's balancer,
//! right below, remembers per instance where the earlier attempts went: a retry goes to an
//! endpoint the request has not tried yet whenever one is eligible and ready, so an endpoint that
//! fails fast cannot take every attempt before outlier ejection notices it. Other balancers ignore
//! the marker. Cost: nothing on the first attempt; the marker is zero-sized, so a retry pays at
//! most the extension map's own allocations when its request had no extensions.
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Empty;
//! use bytes::Bytes;
//! use mesh_retry::retry::{RetryLayer, RetryPolicy};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
//! let counter = calls.clone();
//! // Fails once with 503, then answers.
//! let flaky = tower::service_fn(move |_req: Request<_>| {
//!     let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     async move {
//!         let status = if n == 0 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
//!         let res = Response::builder().status(status).body(()).unwrap();
//!         Ok::<_, std::convert::Infallible>(res)
//!     }
//! });
//! let service = ServiceBuilder::new()
//!     .layer(RetryLayer::new(RetryPolicy::default().seed(1)).unwrap())
//!     .service(flaky);
//! let req = Request::get("http://orders/items").body(Empty::<Bytes>::new()).unwrap();
//! let res = service.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
//! # }
//! ```

mod backoff;
mod future;
mod layer;
mod limit;
mod marker;
mod metrics;
mod policy;
mod service;
mod template;

pub use backoff::ExponentialBackoff;
pub use future::ResponseFuture;
pub(crate) use future::attempt_request;
pub use layer::RetryLayer;
pub use limit::RetryLimit;
pub use marker::{Retryable, is_idempotent};
pub use policy::RetryPolicy;
pub use service::Retry;
