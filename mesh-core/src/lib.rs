#![doc = include_str!("../README.md")]
// Feature-gated items carry their feature on docs.rs (`--cfg docsrs`, see Cargo.toml).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod attempts;
pub mod body;
pub mod classify;
#[cfg(feature = "client")]
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
pub use error::{BoxError, ConfigError, is_caused_by};
pub use identity::PeerIdentity;
