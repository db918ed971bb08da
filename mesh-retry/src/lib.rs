//! Resilience layers for the mesh-* stack: retries with budgets, replayable bodies, hedging, deadlines,
//! circuit breaking and limits.
//!
//! ```text
//! request → timeout (overall deadline, grpc-timeout in and out)          timeout::RequestTimeoutLayer
//!         → retry: policy from mesh_core::classify, retry budget,         retry::RetryLayer
//!                  bounded replay buffer                                  budget, body
//!         → hedge: one extra attempt for slow idempotent requests         hedge::HedgeLayer
//!         → circuit breaker: closed → open → half-open, as a readiness gate
//!         → inner service (usually mesh-balance)
//! ```
//!
//! | Module      | What it gives                                                                  |
//! |-------------|--------------------------------------------------------------------------------|
//! | [`retry`]   | [`RetryLayer`](retry::RetryLayer): HTTP/gRPC-aware retries, backoff with full jitter, per-try timeout |
//! | [`budget`]  | [`RetryBudget`](budget::RetryBudget): exact sliding-window budget, gRPC token bucket |
//! | [`body`]    | [`ReplayBody`](body::ReplayBody): streams once, replays up to a cap, never loses or duplicates a byte |
//! | [`hedge`]   | [`HedgeLayer`](hedge::HedgeLayer): backup requests at a latency percentile, within the budget |
//! | [`timeout`] | [`RequestTimeoutLayer`](timeout::RequestTimeoutLayer): deadlines, `grpc-timeout` in and out |
//! | [`breaker`] | circuit breaking                                                               |
//! | [`limit`]   | concurrency, adaptive and rate limits                                          |
//!
//! Failures are mesh-core's types, boxed: [`mesh_core::error::Timeout`],
//! [`mesh_core::error::CircuitOpen`], [`mesh_core::error::RateLimited`] and
//! [`mesh_core::error::Overloaded`]. A retry that the budget refuses is not an error of its own:
//! the caller gets the failure that was going to be retried, as it was.
//!
//! One budget shared by retries and hedges, under an overall deadline:
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use mesh_retry::budget::WindowBudget;
//! use mesh_retry::hedge::{HedgeConfig, HedgeDelay, HedgeLayer};
//! use mesh_retry::retry::{RetryLayer, RetryPolicy};
//! use mesh_retry::timeout::{RequestTimeoutLayer, TimeoutConfig};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let budget = WindowBudget::default();
//! let upstream = tower::service_fn(|_req: Request<_>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(()))
//! });
//! let client = ServiceBuilder::new()
//!     .layer(RequestTimeoutLayer::new(
//!         TimeoutConfig::default().with_timeout(Some(Duration::from_secs(5))),
//!     ))
//!     .layer(RetryLayer::new(RetryPolicy::default()).with_budget(budget.clone()))
//!     .layer(
//!         HedgeLayer::new(
//!             HedgeConfig::default().with_delay(HedgeDelay::Fixed(Duration::from_millis(100))),
//!         )
//!         .drawing_from(budget),
//!     )
//!     .service(upstream);
//! let req = Request::put("http://orders/items/1")
//!     .body(Full::new(Bytes::from_static(b"{}")))
//!     .unwrap();
//! assert_eq!(client.oneshot(req).await.unwrap().status(), 200);
//! # }
//! ```

pub mod body;
pub mod breaker;
pub mod budget;
pub mod hedge;
pub mod limit;
pub mod retry;
pub mod timeout;
