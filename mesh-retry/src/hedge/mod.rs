//! Hedged requests: when an idempotent request is slow, send one extra attempt and take the first
//! success.
//!
//! Tail latency is often one slow endpoint, not a slow service. [`HedgeLayer`] sends a second
//! attempt of a request that has not answered after a delay — fixed, or a percentile of recent
//! latencies from a rotating [`LatencyHistogram`] (the Finagle "backup request" model) — through a
//! fresh clone of the inner service, so a balancer below picks again and usually lands on another
//! endpoint. The first success wins; the other attempt is dropped, which cancels it.
//!
//! Bounded like retries: only idempotent requests (RFC 9110 §9.2.2) or those marked
//! [`Retryable`](crate::retry::Retryable) are hedged, at most one extra attempt per request, each
//! hedge takes a token from a [`RetryBudget`](crate::budget::RetryBudget) (share the retry layer's
//! with [`HedgeLayer::drawing_from`]), and the body must fit the replay buffer. Unlike tower's
//! `Hedge`, the extra load is capped by that budget.
//!
//! Under a [`RetryLayer`](crate::retry::RetryLayer) each layer keeps its own replay copy of the
//! body (up to its own cap), so a request body may be held twice; lower this layer's
//! [`replay_cap`](HedgeConfig::replay_cap) if that matters.
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response};
//! use http_body_util::Empty;
//! use bytes::Bytes;
//! use mesh_retry::hedge::{HedgeConfig, HedgeDelay, HedgeLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
//! let counter = calls.clone();
//! // The first call hangs for a minute; the second answers at once.
//! let service = tower::service_fn(move |_req: Request<_>| {
//!     let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     async move {
//!         if n == 0 {
//!             tokio::time::sleep(Duration::from_secs(60)).await;
//!         }
//!         Ok::<_, std::convert::Infallible>(Response::new(n))
//!     }
//! });
//! let service = ServiceBuilder::new()
//!     .layer(HedgeLayer::new(
//!         HedgeConfig::default().delay(HedgeDelay::Fixed(Duration::from_millis(50))),
//!     ).unwrap())
//!     .service(service);
//! let req = Request::get("http://orders/items").body(Empty::<Bytes>::new()).unwrap();
//! let response = service.oneshot(req).await.unwrap();
//! assert_eq!(*response.body(), 1, "the hedge won");
//! # }
//! ```

mod future;
mod histogram;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use histogram::LatencyHistogram;
pub use layer::{HedgeConfig, HedgeDelay, HedgeLayer};
pub use service::Hedge;
