//! Discovery: where the endpoints of a service are, as a stream of changes.
//!
//! Every source here is a [`Stream`](futures_core::Stream) of
//! `Result<`[`Change`]`<`[`EndpointKey`]`, `[`Endpoint`]`>, E>`, so it is a
//! [`tower::discover::Discover`] and plugs into mesh-balance's balancer or tower's own:
//!
//! | source | what it follows | error type |
//! |---|---|---|
//! | [`StaticDiscover`] | a fixed list | [`Infallible`](std::convert::Infallible) |
//! | [`DiscoverHandle`] → [`HandleDiscover`] | `set` / `insert` / `remove` calls at run time | `Infallible` |
//! | [`FileDiscover`] (feature `file`) | a TOML or JSON file, re-read when it changes | [`DiscoverError`] |
//! | [`DnsDiscover`] (feature `dns`) | A/AAAA or SRV records, re-resolved at their TTL | [`DiscoverError`] |
//!
//! # Guarantees shared by every source
//!
//! - **Only differences are emitted.** Sources that learn whole sets diff each one against the
//!   last through one [`SnapshotDiffer`]: an unchanged endpoint produces nothing; a changed one
//!   (same address, new weight, locality, identity or labels) produces an `Insert` that replaces
//!   it; a `Remove` is produced only for an address that is truly gone. A balancer can therefore
//!   let a removed endpoint finish its in-flight requests, and never sees a spurious
//!   remove-then-insert for an endpoint that merely changed.
//! - **Inserts before removes.** Within one update, all inserts come first, so replacing every
//!   endpoint never passes through an empty set.
//! - **Failures keep the last good set.** A broken file or a failed DNS lookup never removes
//!   endpoints. It is logged (`tracing::warn!`), counted in the OpenTelemetry counter
//!   **`mesh.discovery.errors`** (unit `{error}`, attribute `mesh.discovery.source` = `file` or
//!   `dns`; the source's series is recorded at 0 when the source is built, so the first error
//!   shows in Prometheus' `increase()`), and yielded as an `Err(`[`DiscoverError`]`)` item, which sources can be told not to
//!   yield (`yield_errors(false)`).
//! - **Streams never end**, not even after an error: a consumer should log an `Err` item and keep
//!   polling (mesh-balance's balancer does). tower's `Balance` instead fails `poll_ready` on a
//!   discovery error, so give it sources with `yield_errors(false)`.
//!
//! # Example
//!
//! ```
//! use mesh_balance::discover::{DiscoverHandle, StaticDiscover};
//! use mesh_core::Endpoint;
//! use tower::discover::{Change, Discover};
//!
//! fn assert_discover<D: Discover>(_: &D) {}
//!
//! let a = Endpoint::new("10.0.0.1:8080".parse().unwrap());
//! assert_discover(&StaticDiscover::new([a.clone()]));
//!
//! let handle = DiscoverHandle::new();
//! let discover = handle.discover();
//! assert_discover(&discover);
//! handle.set([a]);
//! ```

mod diff;
#[cfg(feature = "dns")]
mod dns;
mod error;
#[cfg(feature = "file")]
mod file;
mod handle;
#[cfg(any(feature = "file", feature = "dns"))]
mod report;
mod static_list;

pub use self::diff::SnapshotDiffer;
#[cfg(feature = "dns")]
pub use self::dns::{DnsDiscover, DnsDiscoverConfig, DnsTarget};
pub use self::error::DiscoverError;
#[cfg(feature = "file")]
pub use self::file::{FileDiscover, FileDiscoverConfig, FileFormat, MAX_FILE_BYTES};
pub use self::handle::{DiscoverHandle, HandleDiscover};
pub use self::static_list::StaticDiscover;

/// The hickory-resolver crate that [`DnsDiscover::new`] takes a resolver from, re-exported so
/// the versions always match.
#[cfg(feature = "dns")]
pub use hickory_resolver;

#[doc(no_inline)]
pub use mesh_core::{Endpoint, EndpointKey};
#[doc(no_inline)]
pub use tower::discover::Change;
