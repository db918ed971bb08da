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
//!
//! # Metrics
//!
//! Every layer records through the OpenTelemetry metrics API, with the `Meter` given in its
//! configuration (`with_meter` / `meter`) or, without one, `opentelemetry::global::meter("mesh-retry")`
//! so the application's global provider decides where points go. All instruments are `u64`;
//! counters only go up, gauges hold the last value recorded. Attribute values are fixed strings
//! (no per-request cardinality) except the names you configure.
//!
//! | Name | Instrument | Unit | Attributes | Meaning |
//! |------|------------|------|------------|---------|
//! | `mesh.retry.retries` | counter | `{retry}` | `mesh.retry.reason`: `connect`, `not_sent` (nothing reached the endpoint: unsent exchange or pool exhausted), `timeout`, `transport`, `status`, `overloaded`, `grpc_status` | retries sent ([`retry`]) |
//! | `mesh.retry.budget_exhausted` | counter | `{retry}` | `mesh.retry.reason`, as above | retries the budget refused; the failure went back to the caller as it was |
//! | `mesh.retry.not_replayable` | counter | `{retry}` | `mesh.retry.replay_status`: `capped`, `body_failed`, `passthrough` ([`ReplayStatus`](body::ReplayStatus)) | retries impossible because the request body could not be replayed |
//! | `mesh.hedge.sent` | counter | `{hedge}` | | extra attempts sent ([`hedge`]) |
//! | `mesh.hedge.won` | counter | `{hedge}` | | responses that came from the extra attempt |
//! | `mesh.hedge.budget_exhausted` | counter | `{hedge}` | | hedges the budget refused |
//! | `mesh.timeout.expired` | counter | `{request}` | | requests failed with [`Timeout`](mesh_core::error::Timeout) by [`RequestTimeoutLayer`](timeout::RequestTimeoutLayer) (not per-try timeouts of the retry layer, which count as `mesh.retry.retries{reason=timeout}`) |
//! | `mesh.timeout.grpc_timeout_malformed` | counter | `{request}` | | incoming `grpc-timeout` headers that could not be parsed, ignored and removed |
//! | `mesh.breaker.transitions` | counter | `{transition}` | `mesh.breaker.from`, `mesh.breaker.to`: `closed`, `open`, `half_open`; `mesh.breaker.name`; `server.address`, `server.port` | state changes ([`breaker`]) |
//! | `mesh.breaker.state` | gauge | `{state}` | `mesh.breaker.name`; `server.address`, `server.port` | current state: 0 closed, 1 half-open, 2 open; back to 0 when a registry's breaker is dropped (its endpoint left) |
//! | `mesh.breaker.rejected` | counter | `{request}` | `mesh.breaker.name`; `server.address`, `server.port` | calls refused with [`CircuitOpen`](mesh_core::error::CircuitOpen) (fail-fast mode; a gate refuses through `poll_ready` and counts nothing) |
//! | `mesh.limit.rejected` | counter | `{request}` | `mesh.limit.kind`: `concurrency`, `rate`; `mesh.limit.name` | requests refused with [`Overloaded`](mesh_core::error::Overloaded) or [`RateLimited`](mesh_core::error::RateLimited) ([`limit`]) |
//! | `mesh.limit.concurrency` | gauge | `{request}` | `mesh.limit.kind` = `concurrency`; `mesh.limit.name` | the current concurrency limit; moves with the adaptive ([Vegas](limit::Vegas)) limit |
//!
//! `mesh.breaker.name` and `mesh.limit.name` are present only when a name is configured
//! ([`BreakerConfig::name`](breaker::BreakerConfig::name), `ConcurrencyConfig::name`,
//! `RateLimitConfig::name`). Give each breaker and limit a name when several share a meter: the
//! gauges of unnamed ones overwrite each other. `server.address` (IP, string) and `server.port`
//! (int) are on the breakers of a [`BreakerRegistry`](breaker::BreakerRegistry), one series per
//! endpoint (bounded by the endpoint set; see the registry for what happens when one leaves).
//!
//! Every counter starts at 0 for each attribute set it can take (each retry reason, each replay
//! status, each breaker transition, …) as soon as its layer, breaker or limit is built, so a
//! scrape sees the series before the first increment. Prometheus' `increase()` and `rate()` skip
//! the step from "no series" to the first sample, so a counter that appears at its first
//! increment is under-counted (six retries read as one, or none).

pub mod body;
pub mod breaker;
pub mod budget;
pub mod hedge;
pub mod limit;
pub mod retry;
pub mod timeout;
