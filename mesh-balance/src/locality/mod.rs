//! Locality tiers: keep traffic close, spill over in proportion when the close endpoints fail.
//!
//! Endpoints are grouped by how well their [`Locality`] matches the local one
//! ([`Locality::proximity`]): same subzone, same zone, same region, anywhere else. The balancer
//! sends every request to the best non-empty tier while that tier's **healthy share** (ready and
//! not ejected) is at least [`threshold`](LocalityConfig::threshold) (default 70 %); below it, the
//! tier keeps `healthy_share ÷ threshold` of the traffic and the rest spills over to the next tier,
//! which is judged the same way. This is Envoy's priority-load arithmetic with an overprovisioning
//! factor of `1 ÷ threshold` (1.43 for 70 %; Envoy's default factor 1.4 corresponds to 71.4 %):
//!
//! ```text
//! load(tier i) = min(remaining, min(1, healthy_i ÷ (total_i × threshold)))
//! remaining   -= load(tier i)
//! ```
//!
//! When the tiers together cannot absorb all traffic (every tier degraded), loads are scaled up in
//! proportion so they sum to one; when nothing is healthy at all, the best tier takes everything.
//!
//! A tier whose endpoints are all ejected gets no traffic, yet each of its endpoints still gets
//! its single probe once its ejection is over (the balancer looks for such probes itself), so a
//! tier that failed over comes back when it heals.
//!
//! - **strict** mode never leaves the best non-empty tier: a zone-pinned deployment (data residency,
//!   cross-zone cost) prefers failing to crossing the boundary;
//! - **failover regions**: when not empty, endpoints outside the local region are used only if their
//!   region is on the list (they are ignored otherwise, not merely deprioritised).
//!
//! With the default (unknown) local locality every endpoint lands in the last tier, and locality
//! plays no part.
//!
//! # Priorities instead of proximity
//!
//! With [`tiers(TierSource::Priority)`](LocalityConfig::tiers) an endpoint's tier is its
//! [`priority`](mesh_core::Endpoint::priority) as discovery gave it (xDS EDS priorities: 0 is
//! the most preferred), and the local locality and failover regions play no part. The arithmetic
//! above is unchanged, so this is Envoy's priority failover: priority 0 takes all traffic while
//! its healthy share is at least the threshold, spills the rest to priority 1 below it, and
//! gives everything up when none of it is healthy. There are [`TIERS`] tiers: priorities 0, 1 and
//! 2 have their own, and **priorities 3 and above share the last tier** (an EDS assignment with
//! more than four priorities is rare; within the shared tier, endpoints are balanced as one set).
//! Envoy's default overprovisioning factor is 1.4: set
//! [`overprovisioning_factor(1.4)`](LocalityConfig::overprovisioning_factor), the same as
//! `threshold(1.0 / 1.4)`, to match it exactly.
//!
//! ```
//! use mesh_balance::{BalanceConfig, LocalityConfig};
//! use mesh_core::Locality;
//!
//! let locality = LocalityConfig::new(Locality::new("eu-west", "eu-west-1a", ""))
//!     .threshold(0.8)
//!     .failover_regions(["eu-central"]);
//! let config = BalanceConfig::default().locality(locality);
//! assert!(config.validate().is_ok());
//! ```

use mesh_core::{Endpoint, Locality, Proximity};

/// The number of tiers: subzone, zone, region, any; or priorities 0, 1, 2 and 3 and above.
pub const TIERS: usize = 4;

/// What puts an endpoint in a locality tier; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TierSource {
    /// How close the endpoint's locality is to the local one: same subzone, zone, region, or
    /// elsewhere (the default).
    #[default]
    Proximity,
    /// The endpoint's [`priority`](mesh_core::Endpoint::priority) (xDS EDS): priority `p` is
    /// tier `p`, and priorities 3 and above share the last tier.
    Priority,
}

/// Locality-aware routing settings; see the [module docs](self).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LocalityConfig {
    /// Where this balancer runs. Default: unknown, which puts every endpoint in one tier.
    pub(crate) local: Locality,
    /// The healthy share at or above which a tier takes all its traffic, in `(0, 1]`. Default 0.7
    /// (Envoy's overprovisioning factor 1.4, i.e. 1 / 1.4 ≈ 71 %, rounded to 70 %).
    pub(crate) threshold: f64,
    /// Never leave the best non-empty tier. Default `false`.
    pub(crate) strict: bool,
    /// Regions other than the local one that traffic may fail over to; empty means any.
    pub(crate) failover_regions: Vec<String>,
    /// What makes the tiers. Default [`TierSource::Proximity`].
    pub(crate) tiers: TierSource,
}

impl Default for LocalityConfig {
    fn default() -> Self {
        Self {
            local: Locality::default(),
            threshold: 0.7,
            strict: false,
            failover_regions: Vec::new(),
            tiers: TierSource::Proximity,
        }
    }
}

impl LocalityConfig {
    /// Tiers relative to `local`, other settings at their defaults.
    pub fn new(local: Locality) -> Self {
        Self {
            local,
            ..Self::default()
        }
    }

    /// The healthy share at or above which a tier takes all its traffic, in `(0, 1]`. Default 0.7
    /// (Envoy's overprovisioning factor 1.4, i.e. 1 / 1.4 ≈ 71 %, rounded to 70 %).
    #[must_use]
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// Never leave the best non-empty tier. Default `false`.
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Regions other than the local one that traffic may fail over to; empty means any.
    #[must_use]
    pub fn failover_regions<I, R>(mut self, regions: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        self.failover_regions = regions.into_iter().map(Into::into).collect();
        self
    }

    /// What makes the tiers: locality proximity (the default) or the endpoints' xDS priorities,
    /// see [Priorities instead of proximity](self#priorities-instead-of-proximity). Under
    /// [`TierSource::Priority`] the local locality and the failover regions are not used.
    #[must_use]
    pub fn tiers(mut self, source: TierSource) -> Self {
        self.tiers = source;
        self
    }

    /// Sets the threshold from Envoy's overprovisioning factor: `threshold(1.0 / factor)`.
    /// Envoy's default factor is 1.4 (a threshold of about 71.4 %); a factor below 1 gives a
    /// threshold above 1, which validation rejects.
    #[must_use]
    pub fn overprovisioning_factor(self, factor: f64) -> Self {
        self.threshold(1.0 / factor)
    }

    /// What makes the tiers.
    pub fn get_tiers(&self) -> TierSource {
        self.tiers
    }

    /// The healthy share at or above which a tier takes all its traffic.
    pub fn get_threshold(&self) -> f64 {
        self.threshold
    }

    /// The tier of `endpoint`: by proximity, 0 = same subzone … 3 = elsewhere, or `None` when it
    /// is outside the local region and not on the failover list; by priority, its priority with
    /// 3 and above in tier 3.
    pub(crate) fn tier_of(&self, endpoint: &Endpoint) -> Option<usize> {
        if self.tiers == TierSource::Priority {
            let last = TIERS - 1;
            return Some(usize::try_from(endpoint.priority()).map_or(last, |p| p.min(last)));
        }
        let proximity = self.local.proximity(endpoint.locality());
        let tier = match proximity {
            Proximity::Subzone => 0,
            Proximity::Zone => 1,
            Proximity::Region => 2,
            Proximity::Any => 3,
        };
        let region = endpoint.locality().region();
        let allowed = tier < 3
            || self.failover_regions.is_empty()
            || self.failover_regions.iter().any(|r| r == region);
        allowed.then_some(tier)
    }
}

/// Healthy and total endpoint counts of one tier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TierHealth {
    pub(crate) healthy: usize,
    pub(crate) total: usize,
}

/// The share of traffic each tier receives; see the [module docs](self) for the arithmetic.
pub(crate) fn tier_loads(
    tiers: &[TierHealth; TIERS],
    threshold: f64,
    strict: bool,
) -> [f64; TIERS] {
    let mut loads = [0.0; TIERS];
    let Some(best) = tiers.iter().position(|t| t.total > 0) else {
        return loads;
    };
    if strict {
        loads[best] = 1.0;
        return loads;
    }
    let mut remaining = 1.0f64;
    for (load, tier) in loads.iter_mut().zip(tiers) {
        if tier.healthy == 0 {
            continue;
        }
        // The small epsilon keeps 7 of 10 healthy at threshold 0.7 from rounding below 1.
        let capacity = (tier.healthy as f64 / (tier.total as f64 * threshold) + 1e-9).min(1.0);
        *load = capacity.min(remaining);
        remaining -= *load;
    }
    let used = 1.0 - remaining;
    if used <= 0.0 {
        loads[best] = 1.0;
    } else if remaining > 1e-9 {
        loads.iter_mut().for_each(|l| *l /= used);
    }
    loads
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers(counts: [(usize, usize); TIERS]) -> [TierHealth; TIERS] {
        counts.map(|(healthy, total)| TierHealth { healthy, total })
    }

    fn close(a: [f64; TIERS], b: [f64; TIERS]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    #[test]
    fn stays_at_threshold_and_spills_in_proportion() {
        let full = tier_loads(&tiers([(7, 10), (0, 0), (5, 5), (0, 0)]), 0.7, false);
        assert!(close(full, [1.0, 0.0, 0.0, 0.0]), "{full:?}");
        let spill = tier_loads(&tiers([(5, 10), (0, 0), (5, 5), (0, 0)]), 0.7, false);
        let local = 5.0 / 7.0;
        assert!(close(spill, [local, 0.0, 1.0 - local, 0.0]), "{spill:?}");
        let strict = tier_loads(&tiers([(1, 10), (0, 0), (5, 5), (0, 0)]), 0.7, true);
        assert!(close(strict, [1.0, 0.0, 0.0, 0.0]));
    }

    #[test]
    fn degraded_everywhere_is_normalised_and_dead_goes_to_best() {
        let loads = tier_loads(&tiers([(1, 10), (0, 0), (1, 10), (0, 0)]), 0.7, false);
        assert!(close(loads, [0.5, 0.0, 0.5, 0.0]), "{loads:?}");
        let dead = tier_loads(&tiers([(0, 0), (0, 3), (0, 3), (0, 0)]), 0.7, false);
        assert!(close(dead, [0.0, 1.0, 0.0, 0.0]));
    }
}
