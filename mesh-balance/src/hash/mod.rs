//! Consistent hashing for stickiness: the same request key goes to the same endpoint.
//!
//! A [`Balance`](crate::Balance) uses them when configured with a [`HashConfig`]
//! ([`BalanceConfig::hash`](crate::BalanceConfig::hash); see the
//! [balancer docs](crate::balance#consistent-hashing)). The pieces are usable on their own too:
//!
//! - [`HashKey`] takes the key from a request (a header, a cookie or the path);
//! - [`hash_bytes`] / [`StableHasher`] hash it with a fixed algorithm, so every process agrees;
//! - [`HashRing`] maps the hash to an endpoint index (Ketama-style ring, 160 points per unit of
//!   weight), with **bounded load**: an endpoint above `c ×` its fair share (default `c` = 1.25)
//!   passes the key on to the next endpoint clockwise.
//!
//! When one of N endpoints leaves, only the keys it owned move (about 1/N); the others keep
//! their endpoint. Bounded load trades a little of that stability for a hard cap on imbalance:
//! keys move while their home endpoint is full and come back when it drains.
//!
//! ```
//! use mesh_balance::hash::{HashKey, HashRing};
//! use mesh_core::{Endpoint, EndpointKey, Weight};
//!
//! let endpoints: Vec<Endpoint> = (1..=4)
//!     .map(|i| Endpoint::new(format!("10.0.0.{i}:80").parse().unwrap()))
//!     .collect();
//! let ring = HashRing::build(
//!     &endpoints.iter().map(|e| (e.key(), e.weight())).collect::<Vec<_>>(),
//! );
//! let key = HashKey::header(http::header::HeaderName::from_static("x-user"));
//! let req = http::Request::builder().header("x-user", "alice").body(()).unwrap();
//! let in_flight = [0u64; 4];
//! let index = ring.pick(key.hash(&req).unwrap(), &in_flight).unwrap();
//! let again = ring.pick(key.hash(&req).unwrap(), &in_flight).unwrap();
//! assert_eq!(index, again);
//! # let _: EndpointKey = ring.key(index).unwrap(); let _ = Weight::DEFAULT;
//! ```

mod config;
mod key;
mod ring;
mod stable;

pub use self::config::HashConfig;
pub use self::key::HashKey;
pub use self::ring::{HashRing, LoadView, RingConfig};
pub use self::stable::{BuildStableHasher, StableHasher, hash_bytes};
