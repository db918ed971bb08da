//! The shared vocabulary of the mesh-* crates.
//!
//! Every mesh-* layer crate (`mesh-balance`, `mesh-retry`, `mesh-tls`, `mesh-observe`) speaks through
//! this crate, so that they compose without depending on each other:
//!
//! - [`Endpoint`] and [`Locality`]: where a request can go, its weight, its zone, the identity it
//!   must prove;
//! - [`classify`]: one outcome classification on top of `tower_http::classify`, used alike by circuit
//!   breakers, retries, outlier ejection and metrics;
//! - [`error`]: one opaque type per failure ([`error::Timeout`], [`error::NoEndpoints`] …), a cause-chain
//!   helper, and the layer that maps failures to HTTP and gRPC responses at a proxy edge;
//! - [`PeerIdentity`]: the mTLS-verified peer, carried in request extensions;
//! - [`attempts`]: the endpoints a request's attempts went to, shared by a retry layer and a
//!   balancer so that a retry goes somewhere else;
//! - [`Body`]: the boxed body type used where bodies of different kinds meet;
//! - [`client`] and [`server`]: HTTP/1.1 and HTTP/2 plumbing on hyper, generic over the transport
//!   (plain TCP here, TLS from `mesh-tls`);
//! - [`service`]: boxed HTTP service aliases for the edges of a stack;
//! - [`time`]: deadline arithmetic that cannot panic;
//! - [`proxy`]: header rules for forwarding a request (hop-by-hop removal, authority rewrite,
//!   `Forwarded` / `Via`).

pub mod attempts;
pub mod body;
pub mod classify;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod identity;
pub mod log;
pub mod proxy;
pub mod server;
pub mod service;
pub mod time;

pub use body::Body;
pub use endpoint::{Endpoint, EndpointKey, Identity, Locality, Proximity, Weight};
pub use error::{BoxError, is_caused_by};
pub use identity::PeerIdentity;
