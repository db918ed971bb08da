//! Circuit breaker: stop sending to a service that is failing, probe it, resume when it recovers.
//!
//! ```text
//!            failure rate / slow-call rate ≥ threshold          open period ends
//!  Closed ─────────────────────────────────────────────▶ Open ───────────────▶ HalfOpen
//!    ▲       (or N consecutive failures)                  ▲                       │
//!    │                                                    └── a probe fails ──────┤
//!    └──────────────────────── enough probes succeed ─────────────────────────────┘
//! ```
//!
//! - **Closed** counts outcomes in a [`SlidingWindow`] (the last N calls, or the last N seconds in
//!   one-second buckets) and trips when, with at least `minimum_calls` in the window, the failure
//!   share or the slow-call share reaches its threshold; or, with
//!   [`TripRule::ConsecutiveFailures`], after N failures in a row.
//! - **Open** refuses every call for the open duration: `open_duration × open_backoff^k` (k =
//!   consecutive re-opens without a close), capped by `max_open_duration`, shortened at random
//!   by up to `jitter` (seeded RNG).
//! - **HalfOpen** admits `half_open_probes` calls. The breaker reopens as soon as
//!   ⌈failure_rate × probes⌉ of them failed or were slow (one, in consecutive mode) and closes as
//!   soon as the rest succeeded; the window is then cleared.
//!
//! **Probes are reclaimed.** A call that never reports — its response future or body was dropped
//! or cancelled — gives its permit back without counting anything, so a half-open breaker can
//! never get stuck waiting for it (resilience4j #903 and #935 are that bug). See [`BreakerPermit`].
//!
//! **Outcomes** come from the classifier (mesh-core's [`MeshClassifier`] by default) through
//! [`observe_response`]: a call ends when its response body ends, so gRPC statuses in trailers and
//! bodies that fail half-way count, and the slow-call clock runs until then. Errors returned by
//! the inner service are classified with [`ErrorKind::of`]. "Overloaded" answers (429, 503 with
//! `Retry-After`, and [`Overloaded`] / [`RateLimited`] errors) count as neither success nor
//! failure unless [`BreakerConfig::count_overloaded`] is set: the server is alive and asks for
//! less traffic, which a retry budget or limiter should handle, not an outage detector. Errors
//! that say nothing about the service's health ([`ErrorKind::is_endpoint_failure`] is `false`)
//! are never counted: a client's malformed request body (`BadRequest`), a saturated local
//! connection pool (`PoolExhausted`).
//!
//! **Two modes** ([`BreakerMode`]): fail fast — `poll_ready` stays ready and refused calls fail with
//! [`CircuitOpen`] — for a route-level breaker; or gate — `poll_ready` is `Pending` while the breaker
//! refuses and wakes when it admits again — for a per-endpoint readiness gate under a balancer.
//!
//! **Per endpoint.** Under a balancer, a [`BreakerRegistry`] keeps one gate-mode breaker per
//! endpoint address for the endpoint factory, labels each one's metrics with the address and
//! forgets it when the endpoint leaves discovery.
//!
//! **Events.** [`BreakerHandle::state`] and [`BreakerHandle::subscribe`] (a `watch` channel of
//! [`BreakerState`]); `tracing` debug events on each change.
//!
//! **Metrics** (OpenTelemetry, meter from [`BreakerConfig::meter`] or the global
//! `mesh-retry` meter; every point carries `mesh.breaker.name` when a name is configured, and a
//! registry's breakers carry their endpoint's `server.address` and `server.port`):
//! `mesh.breaker.transitions`, `mesh.breaker.state` (0 closed, 1 half-open, 2 open) and
//! `mesh.breaker.rejected`; units and attributes are in the [crate's metric
//! table](crate#metrics).
//!
//! **Cost.** Admission and recording take one short mutex-protected section each; the response
//! body wrapper carries the recording callback in one small box per response.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use http::{Request, Response, StatusCode};
//! use mesh_core::error::CircuitOpen;
//! use mesh_retry::breaker::{BreakerConfig, BreakerState, CircuitBreakerLayer};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let layer = CircuitBreakerLayer::new(
//!     BreakerConfig::new()
//!         .consecutive_failures(2)
//!         .open_duration(Duration::from_secs(5), 2.0, Duration::from_secs(60)),
//! )
//! .unwrap();
//! let backend = service_fn(|_req: Request<String>| async {
//!     let mut res = Response::new(String::from("broken"));
//!     *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
//!     Ok::<_, std::convert::Infallible>(res)
//! });
//! let breaker = layer.layer(backend);
//! let handle = breaker.handle().clone();
//!
//! for _ in 0..2 {
//!     // The outcome is recorded when the response body ends (here: when it is dropped).
//!     let res = breaker.clone().oneshot(Request::new(String::new())).await.unwrap();
//!     assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
//! }
//! assert_eq!(handle.state(), BreakerState::Open);
//! let err = breaker.oneshot(Request::new(String::new())).await.unwrap_err();
//! assert!(err.is::<CircuitOpen>());
//! # }
//! ```
//!
//! [`MeshClassifier`]: mesh_core::classify::MeshClassifier
//! [`observe_response`]: mesh_core::classify::observe_response
//! [`ErrorKind::of`]: mesh_core::classify::ErrorKind::of
//! [`ErrorKind::is_endpoint_failure`]: mesh_core::classify::ErrorKind::is_endpoint_failure
//! [`Overloaded`]: mesh_core::error::Overloaded
//! [`RateLimited`]: mesh_core::error::RateLimited
//! [`CircuitOpen`]: mesh_core::error::CircuitOpen

mod config;
mod core;
mod future;
mod handle;
mod layer;
mod metrics;
mod registry;
mod service;
mod window;

use mesh_core::classify::{GrpcEosClassifier, ObservedBody};

pub use config::{BreakerConfig, BreakerMode, SlidingWindow, TripRule};
pub use core::BreakerState;
pub use future::ResponseFuture;
pub use handle::{BreakerHandle, BreakerPermit};
pub use layer::CircuitBreakerLayer;
pub use registry::BreakerRegistry;
pub use service::CircuitBreaker;

/// The response body of a [`CircuitBreaker`]: the inner body, observed until its end. `E` is the
/// classifier's end-of-stream half ([`GrpcEosClassifier`] for the default classifier).
pub type BreakerBody<B, E = GrpcEosClassifier> = ObservedBody<B, E, BreakerPermit>;
