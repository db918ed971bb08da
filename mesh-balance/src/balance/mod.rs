//! The balancer: power of two choices over a discovered endpoint set, with fail-fast, weights,
//! outlier ejection and locality tiers.
//!
//! [`Balance`] consumes discovery as any [`tower::discover::Discover`] of
//! `Change<EndpointKey, Endpoint>` and builds one service per endpoint with a [`MakeEndpoint`]
//! (any `Fn(&Endpoint) -> S`). For each request it:
//!
//! 1. applies pending discovery changes (a removed endpoint takes no new requests; requests in
//!    flight own their service clone and finish);
//! 2. draws a [locality tier](crate::locality) (by proximity, or by xDS priority) by the tiers'
//!    traffic shares; an ejected endpoint of a tier that gets no traffic at all is still given
//!    its probe once its ejection is over, so a failed-over tier can come back;
//! 3. samples two distinct eligible endpoints of that tier (ready, not
//!    [draining](#draining-endpoints), and let through by their
//!    [outlier gate](crate::eject)), and keeps the one with the lower
//!    [cost](crate::load) (`rtt × (pending + 1) ÷ weight` by default); an endpoint due for its
//!    single probe wins outright;
//! 4. polls the winner's service ready and reserves it; on `Pending` it tries again without it;
//! 5. in [hash mode](#consistent-hashing), `call` moves a request that carries the key to the
//!    ring's endpoint for it.
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
//! # Consistent hashing
//!
//! With [`BalanceConfig::hash`] set, a request whose [`HashKey`](crate::hash::HashKey) (a
//! header, a cookie or the path) is present goes to the endpoint a
//! [`HashRing`](crate::hash::HashRing) maps the key to; a request without it (or with an empty
//! value) is balanced by power of two choices as usual. The ring holds every endpoint of the
//! set, keyed by address and sized by weight (slow start does not shrink its share of the ring;
//! bounded load limits what it takes). It is rebuilt by the first hashed request after discovery
//! changed the set, *outside* the balancer's lock (about 1 ms for 100 endpoints, 10 ms for
//! 1000, in the bench); hashed requests that arrive meanwhile keep their balanced pick, so a
//! discovery change can send a key elsewhere for that long. The rebuild allocates; a hashed
//! request otherwise does not.
//!
//! - **Bounded load.** The load is each endpoint's requests in flight (until the body ends); an
//!   endpoint holding more than `c ×` its weight's share of its tier's in-flight requests
//!   (default `c` = 1.25) passes the key on clockwise, and the key comes back once it drains.
//! - **Eligibility.** Ejected, unready and out-of-tier endpoints are walked past like full ones, so
//!   only their keys move, and come back when they are in rotation again. An ejected endpoint's
//!   first hashed request after its ejection is its single probe, as with power of two choices.
//!   Panic mode ignores ejection here too.
//! - **Locality.** Hashing happens *within the tier `poll_ready` chose* (by the tiers' traffic
//!   shares, see [`locality`](crate::locality)): while the local tier is healthy every key stays
//!   local and sticks to one local endpoint; when traffic spills over, the spilled share of a
//!   key's requests sticks to one endpoint of the next tier. Stickiness is per tier, never across
//!   tiers, so locality always wins over stickiness.
//!
//! **Readiness.** `poll_ready` cannot hash: it runs before the request exists. So in hash mode
//! `poll_ready` is unchanged: it reserves an endpoint by power of two choices, which keeps its
//! guarantees (it resolves once *some* endpoint is ready, fails fast with `NoEndpoints`, bounds the
//! waiters). `call` then hashes the request and, when the ring's endpoint is another one, polls
//! that endpoint's service once, without waiting; if it is ready the request goes there and the
//! reservation is given back (its service clone dropped, a claimed probe returned); if not, the
//! endpoint is marked unready like any other and the walk continues clockwise; if no eligible
//! endpoint of the tier is ready, the reservation is used. The trade-offs:
//!
//! - stickiness is best effort: a key whose endpoint is momentarily not ready (a full connection
//!   pool, say) is served by the next one clockwise rather than waited for; with an
//!   `mesh_core::client::HttpClient`, always ready, this does not happen;
//! - a hashed request polls up to two services, and takes the balancer's lock a second time,
//!   in `call` (about 0.3–0.4 µs more than a plain request in the bench, whatever the number of
//!   endpoints: the bounded-load totals are kept, not scanned);
//! - it never deadlocks or waits in `call`, and no reservation is held past `call`.
//!
//! Waiting for the ring's endpoint instead (polling it ready in the response future) would
//! keep stickiness strict but gives up fail-fast for keyed requests and can hold a caller on one
//! endpoint while others are idle; bounded load exists to avoid exactly that.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{HeaderName, Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use mesh_balance::discover::StaticDiscover;
//! use mesh_balance::hash::{HashConfig, HashKey};
//! use mesh_balance::{Balance, BalanceConfig};
//! use mesh_core::Endpoint;
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mesh_core::BoxError> {
//! let endpoints = (1..=4).map(|i| Endpoint::new(format!("127.0.0.1:808{i}").parse().unwrap()));
//! let make = |ep: &Endpoint| {
//!     let addr = ep.addr();
//!     service_fn(move |_req: Request<()>| async move {
//!         Ok::<_, Infallible>(Response::new(Full::new(bytes::Bytes::from(addr.to_string()))))
//!     })
//! };
//! // Sticky by the `x-session` header; up to 1.5 × an endpoint's fair share before overflowing.
//! let sticky = HashConfig::new(HashKey::header(HeaderName::from_static("x-session")))
//!     .load_factor(1.5);
//! let config = BalanceConfig::default().seed(7).hash(sticky);
//! let balance = Balance::new(StaticDiscover::new(endpoints), make, config)?;
//!
//! let served_by = |session: &'static str| {
//!     let balance = balance.clone();
//!     async move {
//!         let request = Request::builder().header("x-session", session).body(()).unwrap();
//!         let response = balance.oneshot(request).await?;
//!         Ok::<_, mesh_core::BoxError>(response.into_body().collect().await?.to_bytes())
//!     }
//! };
//! let first = served_by("alice").await?;
//! for _ in 0..10 {
//!     assert_eq!(served_by("alice").await?, first);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Draining endpoints
//!
//! An endpoint discovery marks [draining](mesh_core::Endpoint::is_draining) (xDS EDS
//! `DRAINING`, a pod on its way out) stays in the set with everything the balancer knows about
//! it (its service and connections, load estimate, outlier gate, slow-start ramp), and the
//! requests it holds finish normally; but no pick chooses it: not power of two choices, not
//! round robin, not a retry moving off a tried endpoint, not panic mode, and it leaves the
//! [hash ring](#consistent-hashing) (its keys go to the next endpoints clockwise). It counts
//! toward neither its tier's healthy share nor panic mode: those are shares of the endpoints
//! that may take requests. When only draining endpoints are left, nothing is ready, and callers
//! [fail fast](#fail-fast-bounded-waiting) with `NoEndpoints`.
//!
//! Discovery changes the mark by inserting the endpoint again under the same key. An unchanged
//! endpoint is ignored; a changed one keeps its state, and keeps its *service* too unless what a
//! [`MakeEndpoint`] may have built it from changed (address, identity, labels): a new weight,
//! locality, priority or draining mark only steers the balancer. So an endpoint marked not
//! draining again is back in rotation at once, warm, with its connections.
//!
//! # Live reconfiguration
//!
//! [`Balance::reconfigure`] (or [`BalanceHandle::reconfigure`], from an admin endpoint or an
//! xDS client) replaces the settings of a running balancer. The new config is validated first;
//! an invalid one changes nothing. It is applied under the balancer's lock, so every clone's
//! next pick uses it; requests in flight, and reservations already made, are untouched, and no
//! request fails because of it. Field by field:
//!
//! - **load strategy**: an unchanged strategy keeps every endpoint's state as it is. A changed
//!   one keeps the pending counts and every *measured* RTT estimate (estimates are kept under
//!   every strategy); an endpoint with no sample yet starts over from the new PeakEWMA
//!   `default_rtt` (zero under the other strategies, which do not read it), since an
//!   unmeasured zero would make it the cheapest endpoint of all. The PeakEWMA decay applies to
//!   the next sample of every endpoint.
//! - **outlier ejection**: the new thresholds and bounds apply to every endpoint's next outcome;
//!   an ejection in force keeps its end. Turning ejection off puts ejected endpoints back in
//!   rotation (with detection off, nothing would judge their probe).
//! - **locality**: every endpoint's tier is recomputed (proximity or priority), and the tier
//!   loads with it.
//! - **slow start**: read at the next pick for every endpoint, from the time it was added (or
//!   came back cold): with a longer window, an endpoint younger than it ramps again.
//! - **`fail_fast_after`, `max_waiters`**: the next poll of every clone; callers already waiting
//!   are woken to re-read them.
//! - **kept from the first config**: the [name](BalanceConfig::name),
//!   [meter](BalanceConfig::meter) and [seed](BalanceConfig::seed) (the metrics instruments and
//!   random streams were made from them; new values are ignored), and
//!   [hash mode](BalanceConfig::hash): turning hashing on or off or changing its key is
//!   refused with a [`ConfigError`] naming `hash` (build a new balancer); the ring settings
//!   of the same key may change, and the ring is rebuilt.
//!
//! Every reconfiguration is logged (`info`) with the main new values.
//!
//! # Status
//!
//! [`Balance::status`] counts the set (endpoints, ready, ejected, draining, panic);
//! [`Balance::endpoints`] reports each endpoint ([`EndpointStatus`]: address, weight, locality
//! tier and priority, readiness, draining, requests in flight, the PeakEWMA RTT estimate, and its
//! outlier gate with the instant its ejection ends). A circuit breaker per endpoint works as a readiness gate, so an
//! open breaker shows as `ready: false`: the balancer cannot see why a service is not ready.
//! [`Balance::handle`] gives a clonable, non-generic [`BalanceHandle`] for an admin endpoint; it
//! reads the same reports and does not keep the balancer alive. [`BalanceConfig::name`] names the
//! balancer on its handle and on its metrics.
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
mod status;
mod try_make;
mod waiters;

pub use config::BalanceConfig;
pub use endpoint::EndpointTicket;
pub use future::ResponseFuture;
pub use layer::BalanceLayer;
pub use make::MakeEndpoint;
pub use mesh_core::ConfigError;
pub use service::Balance;
pub use status::{BalanceHandle, BalanceStatus, EndpointStatus, OutlierStatus};
pub use try_make::{MakeFailed, TryMadeEndpoint, TryMadeFuture, TryMake};

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
