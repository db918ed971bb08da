//! Token-bucket rate limit with burst, optionally one bucket per key, that is `Clone`.
//!
//! Each request takes a token from its key's bucket ([`KeyExtractor`]: [`Global`] by default,
//! [`HeaderKey`], [`PeerIp`], [`PeerIdentityKey`] — the mTLS-verified
//! [`PeerIdentity`](mesh_core::PeerIdentity) mesh-tls records —, or a closure over headers and
//! extensions). A bucket holds up to `burst` tokens and refills continuously at
//! `per_second`. With no token, the request fails at once with
//! [`RateLimited`](mesh_core::error::RateLimited) carrying the exact wait until the next token,
//! which a proxy edge sends as `Retry-After` with a 429. See [`RateLimit`] for the memory bound.
//!
//! Time comes from `tokio::time::Instant`, so a paused test clock drives refills.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use http::{Request, Response};
//! use mesh_core::error::RateLimited;
//! use mesh_retry::limit::rate::HeaderKey;
//! use mesh_retry::limit::{RateLimitConfig, RateLimitLayer};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let layer = RateLimitLayer::new(RateLimitConfig::per_second(2.0).burst(1))
//!     .unwrap()
//!     .keyed_by(HeaderKey(http::header::HeaderName::from_static("x-api-key")));
//! let svc = layer.layer(service_fn(|_req: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(()))
//! }));
//!
//! let request = || Request::builder().header("x-api-key", "alice").body(()).unwrap();
//! svc.clone().oneshot(request()).await.unwrap();
//! // Clones share the buckets: alice's only token is spent.
//! let err = svc.clone().oneshot(request()).await.unwrap_err();
//! let limited = err.downcast_ref::<RateLimited>().unwrap();
//! assert!(limited.retry_after().unwrap() <= Duration::from_millis(500));
//! # }
//! ```

mod bucket;
mod config;
mod future;
mod key;
mod layer;
mod service;

pub use config::RateLimitConfig;
pub use future::ResponseFuture;
pub use key::{Global, HeaderKey, KeyExtractor, PeerIdentityKey, PeerIp};
pub use layer::RateLimitLayer;
pub use service::RateLimit;
