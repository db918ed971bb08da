//! The balancer: power of two choices over a discovered endpoint set, with fail-fast, weights,
//! outlier ejection and locality tiers.
//!
//! [`Balance`] consumes discovery as any [`tower::discover::Discover`] of
//! `Change<EndpointKey, Endpoint>` and builds one service per endpoint with a [`MakeEndpoint`]
//! (any `Fn(&Endpoint) -> S`). For each request it:
//!
//! 1. applies pending discovery changes (a removed endpoint takes no new requests; requests in
//!    flight own their service clone and finish);
//! 2. draws a [locality tier](crate::locality) by the tiers' traffic shares;
//! 3. samples two distinct eligible endpoints of that tier (ready, and let through by their
//!    [outlier gate](crate::eject)), and keeps the one with the lower
//!    [cost](crate::load) (`rtt × (pending + 1) ÷ weight` by default); an endpoint due for its
//!    single probe wins outright;
//! 4. polls the winner's service ready and reserves it; on `Pending` it tries again without it.
//!
//! The response body is wrapped in a [`MeasuredBody`] (mesh-core's
//! [`ObservedBody`](mesh_core::classify::ObservedBody) with an [`EndpointTicket`] as its
//! completion callback): the request stays pending, and its round-trip time keeps running, until
//! the body ends; its classified outcome then feeds the endpoint's outlier gate.
//!
//! # Why a shared, locked set (and what it costs)
//!
//! tower's `Balance` is not `Clone`; the usual fix, a `Buffer` in front, adds a task, a channel
//! hop and an allocation per request, and only re-polls unready endpoints when a new request
//! arrives (tower #824). Here every clone of a `Balance` shares one endpoint set behind a
//! `std::sync::Mutex`, held only for the non-blocking work of `poll_ready` (no `.await`, no I/O):
//! polling discovery, sampling two endpoints, polling one service. Outcomes are recorded outside
//! that lock, into per-endpoint state. The cost is one uncontended lock per request, and
//! serialisation of `poll_ready` across tasks under heavy contention (a few hundred nanoseconds
//! each); the gain is a `Clone + Send + Sync` service that fits under axum with no background
//! task and no allocation per request.
//!
//! Endpoint services are polled with one shared waker that wakes *every* caller waiting for an
//! endpoint, so a readiness change is never lost because the caller that polled a service last
//! went away. The same waker is woken when an ejected endpoint's time is up (a
//! timer armed for the earliest expiry while callers wait), when an endpoint's probe succeeds, and
//! when a probe is given back, so a caller waiting behind ejections gets the endpoint as soon as it
//! may be used rather than when the fail-fast timer fires. The reserved service is taken out of the set for the request (the set keeps a fresh
//! clone, polled before its own first use), so `poll_ready` on one clone and `call` on another can
//! never use the same readiness twice. Endpoint services must therefore be `Clone`, as
//! `mesh_core::client::HttpClient` is.
//!
//! # Fail fast, bounded waiting
//!
//! When no endpoint has been ready for [`fail_fast_after`](BalanceConfig::fail_fast_after)
//! (default 3 s; discovery empty, all unready, all excluded), `poll_ready` returns
//! [`NoEndpoints`](mesh_core::error::NoEndpoints) (boxed) instead of waiting, and keeps doing so at
//! once until an endpoint is ready again. At most [`max_waiters`](BalanceConfig::max_waiters)
//! callers wait at a time; others fail at once. A discovery error is logged and the current set is
//! kept. An endpoint whose service fails `poll_ready` is rebuilt with the factory and the failure
//! counts toward its ejection, instead of the endpoint being dropped.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use mesh_balance::discover::StaticDiscover;
//! use mesh_balance::{Balance, BalanceConfig};
//! use mesh_core::Endpoint;
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mesh_core::BoxError> {
//! let endpoints = ["127.0.0.1:8081", "127.0.0.1:8082"].map(|a| Endpoint::new(a.parse().unwrap()));
//! // Discovery: any stream of `Change<EndpointKey, Endpoint>` (see `mesh_balance::discover`).
//! let discover = StaticDiscover::new(endpoints);
//! // One service per endpoint; in production, `HttpClient::new(ep.clone(), ...)`.
//! let make = |ep: &Endpoint| {
//!     let addr = ep.addr();
//!     service_fn(move |_req: Request<()>| async move {
//!         Ok::<_, Infallible>(Response::new(Full::new(bytes::Bytes::from(addr.to_string()))))
//!     })
//! };
//! let balance = Balance::new(discover, make, BalanceConfig::default().seed(7))?;
//!
//! // Clones share the endpoint set: hand one to each task (or to axum).
//! let response = balance.clone().oneshot(Request::new(())).await?;
//! // Reading the body to its end ends the request's measurement.
//! let body = response.into_body().collect().await?.to_bytes();
//! assert!(body.starts_with(b"127.0.0.1:808"));
//! assert_eq!(balance.status().endpoints, 2);
//! # Ok(())
//! # }
//! ```

mod config;
mod core;
mod endpoint;
mod future;
mod layer;
mod make;
mod service;
mod waiters;

pub use config::{BalanceConfig, ConfigError};
pub use endpoint::EndpointTicket;
pub use future::ResponseFuture;
pub use layer::BalanceLayer;
pub use make::MakeEndpoint;
pub use service::{Balance, BalanceStatus};

/// A response body from the balancer: the endpoint's body, unchanged, plus the bookkeeping that
/// ends the request when the body does.
///
/// The request counts as pending on its endpoint, and its round-trip time keeps running, until the
/// body reaches its end (or trailers), returns an error, or is dropped (see
/// [`ObservedBody`](mesh_core::classify::ObservedBody) for exactly when). Its outcome — from the
/// response head, or from the trailers for gRPC — feeds the endpoint's outlier gate at that moment.
/// A body dropped before a trailers-dependent outcome was known counts as cancelled: it ends the
/// request but tells the gate nothing. No allocation: the [`EndpointTicket`] lives inline.
pub type MeasuredBody<B, E> = mesh_core::classify::ObservedBody<B, E, EndpointTicket>;
