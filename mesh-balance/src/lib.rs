#![doc = include_str!("../README.md")]
// Feature-gated items carry their feature on docs.rs (`--cfg docsrs`, see Cargo.toml).
#![cfg_attr(docsrs, feature(doc_cfg))]
// Links to the DNS and file discovery types resolve only with those features on. docs.rs and the
// workspace's doc build have them on, and there every link is checked.
#![cfg_attr(
    not(all(feature = "dns", feature = "file")),
    allow(rustdoc::broken_intra_doc_links)
)]

pub mod balance;
pub mod discover;
pub mod eject;
pub mod hash;
pub mod load;
pub mod locality;
mod metrics;

pub use balance::{
    Balance, BalanceConfig, BalanceHandle, BalanceLayer, BalanceStatus, ConfigError,
    EndpointStatus, EndpointTicket, MakeEndpoint, MakeFailed, MeasuredBody, OutlierStatus,
    TryMadeEndpoint, TryMadeFuture, TryMake,
};
pub use eject::OutlierConfig;
pub use hash::HashConfig;
pub use load::{LoadStrategy, PeakEwmaConfig};
pub use locality::{LocalityConfig, TierSource};
pub mod health;
pub mod slow_start;
