//! Where a request can go: [`Endpoint`], its [`Locality`] and the identity it must prove.
//!
//! An `Endpoint` is what discovery produces and what every per-endpoint stack is built from: a socket
//! address, a [`Weight`], a [`Locality`] for zone-aware routing, optionally the SPIFFE ID the peer must
//! present over mTLS, and free-form labels. It is immutable and reference counted, so cloning it into
//! every connection attempt and every metric label set costs one atomic increment.
//!
//! Discovery maps are keyed by [`EndpointKey`], which is the socket address: two updates for the same
//! address describe the same endpoint (with, perhaps, a new weight), never two endpoints.
//!
//! ```
//! use mesh_core::{Endpoint, Locality};
//!
//! let ep = Endpoint::builder("127.0.0.1:8080".parse().unwrap())
//!     .weight(3)
//!     .locality(Locality::new("eu-west", "eu-west-1a", ""))
//!     .identity("spiffe://prod.example/ns/shop/sa/orders")
//!     .label("version", "v2")
//!     .build()
//!     .unwrap();
//! assert_eq!(ep.weight().get(), 3);
//! assert_eq!(ep.label("version"), Some("v2"));
//! assert_eq!(ep.key(), ep.clone().key());
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

/// The longest SPIFFE ID an [`Identity`] accepts, in bytes (the SPIFFE-ID spec's interoperability limit).
pub const MAX_IDENTITY_LEN: usize = 2048;

/// A stable key for discovery maps: the endpoint's socket address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey(pub SocketAddr);

impl fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Relative share of traffic an endpoint should receive; at least 1, default 1.
///
/// A balancer scales an endpoint's load by its weight, so an endpoint of weight 2 is picked as if it
/// were half as busy as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Weight(NonZeroU32);

impl Weight {
    /// The weight of an endpoint that names none.
    pub const DEFAULT: Weight = Weight(NonZeroU32::MIN);

    /// A weight, or [`InvalidEndpoint::ZeroWeight`] for 0.
    pub fn new(weight: u32) -> Result<Self, InvalidEndpoint> {
        NonZeroU32::new(weight)
            .map(Weight)
            .ok_or(InvalidEndpoint::ZeroWeight)
    }

    /// The weight as a number (≥ 1).
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl Default for Weight {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where an endpoint runs: region, zone and subzone, from coarse to fine.
///
/// An empty field means "unknown". Two localities match at a level only when the field is known on both
/// sides and equal, together with every coarser field, so an unknown zone never matches another unknown
/// zone by accident.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locality {
    region: Arc<str>,
    zone: Arc<str>,
    subzone: Arc<str>,
}

/// How closely two [`Locality`] values match, best first (`Subzone < Zone < Region < Any`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proximity {
    /// Same region, zone and subzone.
    Subzone,
    /// Same region and zone.
    Zone,
    /// Same region.
    Region,
    /// Nothing in common (or nothing known).
    Any,
}

impl Locality {
    /// A locality from its three levels; pass `""` for a level that is unknown.
    pub fn new(region: &str, zone: &str, subzone: &str) -> Self {
        Self {
            region: region.into(),
            zone: zone.into(),
            subzone: subzone.into(),
        }
    }

    /// The region, or `""` when unknown.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The zone, or `""` when unknown.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The subzone, or `""` when unknown.
    pub fn subzone(&self) -> &str {
        &self.subzone
    }

    /// How closely `other` matches `self`.
    pub fn proximity(&self, other: &Locality) -> Proximity {
        let same = |a: &str, b: &str| !a.is_empty() && a == b;
        if !same(&self.region, &other.region) {
            Proximity::Any
        } else if !same(&self.zone, &other.zone) {
            Proximity::Region
        } else if !same(&self.subzone, &other.subzone) {
            Proximity::Zone
        } else {
            Proximity::Subzone
        }
    }
}

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = |s: &str| if s.is_empty() { "-" } else { s }.to_owned();
        write!(
            f,
            "{}/{}/{}",
            level(&self.region),
            level(&self.zone),
            level(&self.subzone)
        )
    }
}

/// The SPIFFE ID a peer is expected to present, as text.
///
/// mesh-core checks only the outline (a `spiffe://` URI of at most [`MAX_IDENTITY_LEN`] bytes with a
/// trust domain); `mesh-tls` parses it fully when it verifies a handshake, so this crate stays free of
/// TLS dependencies.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity(Arc<str>);

impl Identity {
    /// Checks the outline of a SPIFFE ID and keeps it.
    pub fn new(id: &str) -> Result<Self, InvalidEndpoint> {
        let bad = |reason| InvalidEndpoint::Identity { reason };
        if id.len() > MAX_IDENTITY_LEN {
            return Err(bad("longer than 2048 bytes"));
        }
        let rest = match id.get(..9) {
            Some(scheme) if scheme.eq_ignore_ascii_case("spiffe://") => &id[9..],
            _ => return Err(bad("does not start with spiffe://")),
        };
        let trust_domain = rest.split('/').next().unwrap_or_default();
        if trust_domain.is_empty() {
            return Err(bad("has no trust domain"));
        }
        Ok(Self(id.into()))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an [`Endpoint`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEndpoint {
    /// The weight was 0; weights start at 1.
    #[error("endpoint weight must be at least 1")]
    ZeroWeight,
    /// The expected identity is not a SPIFFE ID.
    #[error("expected identity {reason}")]
    Identity {
        /// What is wrong with it.
        reason: &'static str,
    },
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Inner {
    addr: SocketAddr,
    weight: Weight,
    locality: Locality,
    identity: Option<Identity>,
    labels: BTreeMap<Arc<str>, Arc<str>>,
    priority: u32,
    draining: bool,
}

/// One instance of a service: an address plus what routing needs to know about it.
///
/// Cheap to clone (one `Arc`). Equality compares every field, so discovery can tell a changed endpoint
/// (same [`key`](Endpoint::key), new weight) from an unchanged one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Endpoint(Arc<Inner>);

impl Endpoint {
    /// An endpoint at `addr` with weight 1, unknown locality, no expected identity and no labels.
    pub fn new(addr: SocketAddr) -> Self {
        Self::builder(addr).build_valid()
    }

    /// A builder for the optional parts.
    pub fn builder(addr: SocketAddr) -> EndpointBuilder {
        EndpointBuilder {
            inner: Inner {
                addr,
                weight: Weight::DEFAULT,
                locality: Locality::default(),
                identity: None,
                labels: BTreeMap::new(),
                priority: 0,
                draining: false,
            },
            error: None,
        }
    }

    /// A builder pre-filled with this endpoint's address, weight, locality, expected identity and
    /// labels: the way to derive a changed endpoint (another weight, an added label) from a
    /// discovered one.
    ///
    /// ```
    /// use mesh_core::Endpoint;
    ///
    /// let ep = Endpoint::builder("10.0.0.1:80".parse().unwrap()).weight(3).build().unwrap();
    /// let pinned = ep.to_builder().identity("spiffe://example.org/api").build().unwrap();
    /// assert_eq!(pinned.weight().get(), 3);
    /// assert_eq!(pinned.identity().unwrap().as_str(), "spiffe://example.org/api");
    /// ```
    pub fn to_builder(&self) -> EndpointBuilder {
        EndpointBuilder {
            inner: Inner {
                addr: self.0.addr,
                weight: self.0.weight,
                locality: self.0.locality.clone(),
                identity: self.0.identity.clone(),
                labels: self.0.labels.clone(),
                priority: self.0.priority,
                draining: self.0.draining,
            },
            error: None,
        }
    }

    /// The key discovery maps use for this endpoint.
    pub fn key(&self) -> EndpointKey {
        EndpointKey(self.0.addr)
    }

    /// The socket address to connect to.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// The endpoint's weight.
    pub fn weight(&self) -> Weight {
        self.0.weight
    }

    /// Where the endpoint runs.
    pub fn locality(&self) -> &Locality {
        &self.0.locality
    }

    /// The SPIFFE ID the peer must present, when mTLS is in use.
    pub fn identity(&self) -> Option<&Identity> {
        self.0.identity.as_ref()
    }

    /// The value of one label.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.0.labels.get(name).map(|v| &**v)
    }

    /// All labels, sorted by name.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.labels.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The endpoint's priority: 0 (the default) is the most preferred, higher numbers are
    /// failover levels (xDS `LocalityLbEndpoints.priority`). A balancer that routes on priorities
    /// sends traffic to a higher number only when the lower ones cannot take it.
    pub fn priority(&self) -> u32 {
        self.0.priority
    }

    /// `true` when the endpoint is draining (xDS health status `DRAINING`): requests already on it
    /// finish, but it gets no new ones. Default `false`.
    pub fn is_draining(&self) -> bool {
        self.0.draining
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Endpoint");
        d.field("addr", &self.0.addr)
            .field("weight", &self.0.weight.get())
            .field("locality", &format_args!("{}", self.0.locality));
        if let Some(id) = &self.0.identity {
            d.field("identity", &id.as_str());
        }
        if !self.0.labels.is_empty() {
            d.field("labels", &self.0.labels);
        }
        if self.0.priority != 0 {
            d.field("priority", &self.0.priority);
        }
        if self.0.draining {
            d.field("draining", &true);
        }
        d.finish()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.addr.fmt(f)
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Self::new(addr)
    }
}

/// Builds an [`Endpoint`]; the first invalid value is reported by [`build`](EndpointBuilder::build).
#[derive(Debug)]
pub struct EndpointBuilder {
    inner: Inner,
    error: Option<InvalidEndpoint>,
}

impl EndpointBuilder {
    /// Sets the weight (≥ 1).
    pub fn weight(mut self, weight: u32) -> Self {
        match Weight::new(weight) {
            Ok(w) => self.inner.weight = w,
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Sets the locality.
    pub fn locality(mut self, locality: Locality) -> Self {
        self.inner.locality = locality;
        self
    }

    /// Sets the SPIFFE ID the peer must present.
    pub fn identity(mut self, id: &str) -> Self {
        match Identity::new(id) {
            Ok(id) => self.inner.identity = Some(id),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Adds (or replaces) a label.
    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.inner.labels.insert(name.into(), value.into());
        self
    }

    /// Sets the priority (0, the default, is the most preferred); see [`Endpoint::priority`].
    pub fn priority(mut self, priority: u32) -> Self {
        self.inner.priority = priority;
        self
    }

    /// Marks the endpoint as draining (or not); see [`Endpoint::is_draining`].
    pub fn draining(mut self, draining: bool) -> Self {
        self.inner.draining = draining;
        self
    }

    /// The endpoint, or the first invalid value given to the builder.
    pub fn build(self) -> Result<Endpoint, InvalidEndpoint> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(Endpoint(Arc::new(self.inner))),
        }
    }

    fn build_valid(self) -> Endpoint {
        Endpoint(Arc::new(self.inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:80".parse().unwrap()
    }

    #[test]
    fn builder_reports_first_error_and_keeps_values() {
        let err = Endpoint::builder(addr())
            .weight(0)
            .identity("http://x")
            .build()
            .unwrap_err();
        assert_eq!(err, InvalidEndpoint::ZeroWeight);
        let ep = Endpoint::builder(addr()).weight(7).build().unwrap();
        assert_eq!(ep.weight().get(), 7);
        assert_eq!(Endpoint::new(addr()).weight(), Weight::DEFAULT);
    }

    #[test]
    fn to_builder_keeps_every_field() {
        let ep = Endpoint::builder(addr())
            .weight(4)
            .locality(Locality::new("r", "z", "s"))
            .identity("spiffe://td/a")
            .label("version", "v2")
            .priority(2)
            .draining(true)
            .build()
            .unwrap();
        assert_eq!(ep.to_builder().build().unwrap(), ep);
        assert_eq!(ep.priority(), 2);
        assert!(ep.is_draining());
        assert_ne!(ep.to_builder().draining(false).build().unwrap(), ep);
        let changed = ep.to_builder().weight(9).build().unwrap();
        assert_eq!(changed.weight().get(), 9);
        assert_eq!(changed.label("version"), Some("v2"));
        assert_eq!(changed.locality(), ep.locality());
        assert_eq!(changed.identity(), ep.identity());
        assert_eq!(
            ep.to_builder().weight(0).build(),
            Err(InvalidEndpoint::ZeroWeight)
        );
    }

    #[test]
    fn identity_outline() {
        assert!(Identity::new("spiffe://td/ns/a").is_ok());
        assert!(Identity::new("SPIFFE://td").is_ok());
        for bad in [
            "",
            "spiffe://",
            "spiffe:///path",
            "https://td/x",
            "spiffe:/",
        ] {
            assert!(
                matches!(Identity::new(bad), Err(InvalidEndpoint::Identity { .. })),
                "{bad:?}"
            );
        }
        let long = format!("spiffe://td/{}", "a".repeat(MAX_IDENTITY_LEN));
        assert!(Identity::new(&long).is_err());
        // Multi-byte input near the scheme must not panic on a char boundary.
        assert!(Identity::new("spiffeé://x").is_err());
    }

    #[test]
    fn proximity_levels() {
        let local = Locality::new("r1", "z1", "s1");
        assert_eq!(
            local.proximity(&Locality::new("r1", "z1", "s1")),
            Proximity::Subzone
        );
        assert_eq!(
            local.proximity(&Locality::new("r1", "z1", "s2")),
            Proximity::Zone
        );
        assert_eq!(
            local.proximity(&Locality::new("r1", "z2", "s1")),
            Proximity::Region
        );
        assert_eq!(
            local.proximity(&Locality::new("r2", "z1", "s1")),
            Proximity::Any
        );
        // Unknown levels never match each other.
        let unknown = Locality::default();
        assert_eq!(unknown.proximity(&Locality::default()), Proximity::Any);
        let no_zone = Locality::new("r1", "", "");
        assert_eq!(
            no_zone.proximity(&Locality::new("r1", "", "")),
            Proximity::Region
        );
    }

    #[test]
    fn key_is_address_and_equality_sees_changes() {
        let a = Endpoint::builder(addr()).weight(1).build().unwrap();
        let b = Endpoint::builder(addr()).weight(2).build().unwrap();
        assert_eq!(a.key(), b.key());
        assert_ne!(a, b);
        assert_eq!(a, a.clone());
    }
}
