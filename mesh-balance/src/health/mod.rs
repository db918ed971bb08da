//! Active health checks: probe each endpoint periodically; an unhealthy endpoint is not ready.
//!
//! Passive signals (outlier ejection, load) only see endpoints that get traffic, and only after
//! requests have failed. An active check asks each endpoint directly — an HTTP `GET` on a health
//! path, or the gRPC health protocol — and takes it out of rotation before users notice, including
//! endpoints that are idle, and puts it back once it recovers.
//!
//! It is a per-endpoint layer: [`HealthCheckLayer`] wraps the service a balancer builds for each
//! endpoint (in the [`MakeEndpoint`](crate::MakeEndpoint) factory) in a [`HealthChecked`] gate.
//! Readiness is the whole contract with the balancer: while the endpoint is unhealthy,
//! `poll_ready` is `Pending`, so the balancer picks among the others, and the balancer's task is
//! woken when the endpoint turns healthy again. No change to the balancer is needed; with
//! [slow start](crate::slow_start) on, an endpoint back from a spell of failed checks ramps up
//! again (the balancer restarts the ramp of an endpoint that was not ready for at least
//! [`cold_after`](crate::slow_start::SlowStart::cold_after)). When every
//! endpoint is unhealthy, the balancer fails fast with `NoEndpoints` after its bounded wait;
//! there is no "panic mode" that sends traffic to unhealthy endpoints anyway.
//!
//! # How a verdict is reached
//!
//! - One background task per endpoint (`tokio::spawn` when the service is built) sends a probe at
//!   once, then one every [`interval`](HealthCheckConfig::interval) (10 s) ± [`jitter`]
//!   (15 %), measured from the end of one probe to the start of the next, so probes never overlap.
//!   The jitter comes from a seedable `fastrand::Rng` ([`seed`](HealthCheckConfig::seed)).
//! - A probe fails when it errors, when it gets no verdict within
//!   [`timeout`](HealthCheckConfig::timeout) (1 s; it is then cancelled), or when the answer is
//!   not a pass ([`HttpCheck`]: a status in `200..=399`; [`GrpcCheck`]: `grpc-status: 0` and
//!   `SERVING`; malformed gRPC answers fail, they never panic).
//! - [`unhealthy_threshold`](HealthCheckConfig::unhealthy_threshold) (3) consecutive failures turn
//!   a healthy endpoint unhealthy; [`healthy_threshold`](HealthCheckConfig::healthy_threshold) (2)
//!   consecutive passes turn it healthy again. Endpoints start
//!   [healthy](HealthCheckConfig::initial_state) by default, so a cold start with discovery is
//!   not an outage.
//! - The task stops when the last clone of the service is dropped (the balancer dropping a
//!   removed endpoint), cancelling any probe in flight.
//!
//! Probes go through a clone of the wrapped service by default (mesh-core's `HttpClient` for
//! that endpoint, so the same connection settings and TLS identity apply), or through a separate
//! probe service ([`HealthCheckLayer::layer_with_probe`], [`HealthChecked::with_probe`]). The gate
//! should sit directly above the client, below load measurement and outlier ejection, so probes
//! do not count as traffic.
//!
//! # Observing
//!
//! [`HealthChecked::status`] gives a [`HealthStatus`]: the current [`HealthState`] and when it
//! began. Metrics, through [`meter`](HealthCheckConfig::meter) (default
//! `opentelemetry::global::meter("mesh-balance")`):
//!
//! | counter | unit | attribute |
//! |---|---|---|
//! | `mesh.balance.health.transitions` | `{transition}` | `mesh.balance.health.state` = `healthy` \| `unhealthy` (the state entered) |
//! | `mesh.balance.health.probes` | `{probe}` | `mesh.balance.health.result` = `success` \| `timeout` \| `error` \| `status` \| `not_serving` \| `malformed` |
//!
//! Every series of both counters is recorded with 0 when the checker starts, so each exists
//! before its first event (Prometheus' `increase()` needs an earlier sample to count the first
//! one). Transitions are also logged (`tracing` `warn!` when turning unhealthy, `info!` when
//! recovering), and each failed probe at `debug!`.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use http::{Request, Response, StatusCode};
//! use mesh_balance::health::{HealthCheck, HealthCheckConfig, HealthChecked, HealthState};
//! use mesh_core::Body;
//! use tower::service_fn;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), mesh_core::BoxError> {
//! // An endpoint whose health path fails.
//! let endpoint = service_fn(|req: Request<Body>| async move {
//!     let status = if req.uri().path() == "/healthz" {
//!         StatusCode::SERVICE_UNAVAILABLE
//!     } else {
//!         StatusCode::OK
//!     };
//!     let mut response = Response::new(Body::empty());
//!     *response.status_mut() = status;
//!     Ok::<_, Infallible>(response)
//! });
//! let config = HealthCheckConfig::new(HealthCheck::http("/healthz".parse()?))
//!     .interval(Duration::from_secs(1))
//!     .unhealthy_threshold(2);
//! let checked = HealthChecked::new(endpoint, &config)?;
//! let status = checked.status();
//! assert_eq!(status.state(), HealthState::Healthy);
//!
//! // Two failed probes later (the first one is immediate), it is unhealthy.
//! tokio::time::sleep(Duration::from_millis(1500)).await;
//! assert_eq!(status.state(), HealthState::Unhealthy);
//! # Ok(())
//! # }
//! ```
//!
//! [`jitter`]: HealthCheckConfig::jitter

mod checker;
mod config;
mod grpc;
mod layer;
mod metrics;
mod probe;
mod service;
mod status;
mod thresholds;

pub use self::config::{GrpcCheck, HealthCheck, HealthCheckConfig, HttpCheck};
pub use self::layer::HealthCheckLayer;
pub use self::service::HealthChecked;
pub use self::status::{HealthState, HealthStatus};
