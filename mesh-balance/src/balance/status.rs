//! What a balancer can tell about itself: the counts ([`BalanceStatus`]), one line per endpoint
//! ([`EndpointStatus`]), and a [`BalanceHandle`] an admin endpoint can keep.
//!
//! An operator asking "why does this service send nothing to that pod?" needs the balancer's own
//! view: is the endpoint ready, ejected until when, how many requests does it hold, how slow does
//! the balancer think it is, and in which locality tier. Every value is read under the balancer's
//! lock (or from the endpoint's atomics), in one pass, so a snapshot costs one short lock and no
//! request waits on it for long.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Weak;
use std::time::Duration;

use mesh_core::{EndpointKey, Proximity, Weight};
use tokio::time::Instant;

/// A snapshot of a balancer's endpoint set, as of its last poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BalanceStatus {
    /// Endpoints in the set.
    pub endpoints: usize,
    /// Endpoints not known to be unready.
    pub ready: usize,
    /// Endpoints currently ejected by their outlier gate (probing ones included).
    pub ejected: usize,
    /// Endpoints discovery marked draining: in the set (and counted in `endpoints`, and in
    /// `ready` when their service is ready) but given no new requests.
    pub draining: usize,
    /// Whether the balancer is in panic mode (ejection ignored).
    pub panic: bool,
}

/// One endpoint as the balancer sees it, at the moment of the snapshot.
///
/// A read-only report, so its fields are public; `#[non_exhaustive]` so it can grow.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EndpointStatus {
    /// The endpoint's key in the discovery set.
    pub key: EndpointKey,
    /// Where requests go.
    pub addr: SocketAddr,
    /// The weight discovery gave it (before slow start scales it).
    pub weight: Weight,
    /// Its locality tier relative to the balancer's local locality; `None` when it is outside
    /// the allowed failover regions and never used. Under
    /// [`TierSource::Priority`](crate::locality::TierSource::Priority) the tiers are priorities,
    /// not proximities: read [`tier_index`](Self::tier_index) (this field then names tier `i`
    /// by the proximity of the same index).
    pub tier: Option<Proximity>,
    /// Its tier's index, 0 being the most preferred: the proximity (subzone 0 … any 3), or under
    /// [`TierSource::Priority`](crate::locality::TierSource::Priority) its priority capped at
    /// the last tier; `None` as for [`tier`](Self::tier).
    pub tier_index: Option<usize>,
    /// The priority discovery gave it ([`Endpoint::priority`](mesh_core::Endpoint::priority)).
    pub priority: u32,
    /// Whether discovery marked it draining: it finishes the requests it holds and gets no new
    /// ones until it is marked not draining again.
    pub draining: bool,
    /// Whether its service was ready at the balancer's last poll. A per-endpoint circuit breaker
    /// (or any other layer that gates readiness, such as a health check) shows here: an open
    /// breaker is an endpoint that is not ready. The balancer cannot tell why.
    pub ready: bool,
    /// Requests sent to it whose response body has not ended yet.
    pub in_flight: u32,
    /// The peak-EWMA round-trip estimate at the moment of the snapshot (decayed toward zero since
    /// the last sample, as the pick sees it). Starts at
    /// [`default_rtt`](crate::PeakEwmaConfig::default_rtt) under PeakEWMA, at zero under the
    /// other strategies, which keep the estimate but do not use it.
    pub rtt: Duration,
    /// Its outlier gate.
    pub outlier: OutlierStatus,
}

/// Where an endpoint's outlier gate stands (see [`eject`](crate::eject)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutlierStatus {
    /// In rotation.
    InRotation,
    /// Ejected; from `until` on (tokio's clock) its next request is a probe.
    Ejected {
        /// When the ejection ends.
        until: Instant,
    },
    /// Its ejection is over and its single probe request is in flight.
    Probing,
}

impl OutlierStatus {
    /// How long until the ejection ends, as of `now` (zero once it is over); `None` when the
    /// endpoint is not ejected.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        match self {
            OutlierStatus::Ejected { until } => Some(until.saturating_duration_since(now)),
            OutlierStatus::InRotation | OutlierStatus::Probing => None,
        }
    }
}

/// What a [`BalanceHandle`] reads; implemented by the balancer's shared state.
pub(crate) trait StatusSource: Send + Sync {
    fn status(&self) -> BalanceStatus;
    fn endpoints(&self) -> Vec<EndpointStatus>;
    fn reconfigure(&self, config: super::BalanceConfig) -> Result<(), super::ConfigError>;
}

/// A cheap, clonable view of one balancer for an admin or debug endpoint.
///
/// It does not keep the balancer alive: once every clone of the [`Balance`](super::Balance) is
/// dropped, its methods return `None`. It is not generic, so handles of balancers of different
/// types fit in one list.
#[derive(Clone)]
pub struct BalanceHandle {
    pub(crate) name: Option<std::sync::Arc<str>>,
    pub(crate) source: Weak<dyn StatusSource>,
}

impl BalanceHandle {
    /// The balancer's [`name`](super::BalanceConfig::name), if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The counts, as [`Balance::status`](super::Balance::status); `None` once the balancer is
    /// gone.
    pub fn status(&self) -> Option<BalanceStatus> {
        Some(self.source.upgrade()?.status())
    }

    /// One line per endpoint, as [`Balance::endpoints`](super::Balance::endpoints); `None` once
    /// the balancer is gone.
    pub fn endpoints(&self) -> Option<Vec<EndpointStatus>> {
        Some(self.source.upgrade()?.endpoints())
    }

    /// Applies a new configuration to the running balancer (every clone), without dropping a
    /// request: see [`Balance::reconfigure`](super::Balance::reconfigure) for what changes and
    /// what is kept. `Ok(false)` once the balancer is gone.
    pub fn reconfigure(&self, config: super::BalanceConfig) -> Result<bool, super::ConfigError> {
        match self.source.upgrade() {
            Some(source) => source.reconfigure(config).map(|()| true),
            None => Ok(false),
        }
    }
}

impl fmt::Debug for BalanceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceHandle")
            .field("name", &self.name)
            .field("alive", &(self.source.strong_count() > 0))
            .finish()
    }
}
