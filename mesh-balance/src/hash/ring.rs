//! A Ketama-style hash ring with bounded loads.

use std::fmt::Write as _;
use std::hash::Hasher;

use mesh_core::{EndpointKey, Weight};

use super::StableHasher;

/// Settings for [`HashRing`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RingConfig {
    /// Ring points per unit of weight. Default 160, Ketama's value (Pingora and
    /// nginx-compatible rings): with 160 points an endpoint's share of the ring is within a few
    /// percent of its weight share.
    pub(crate) points_per_weight: u32,
    /// Upper bound on the ring size. Default 2²⁰ points (16 MiB): within Envoy's range of 1024 to
    /// 8M entries, and enough for 6,500 endpoints of weight 1 at full resolution. When weights ask
    /// for more, every endpoint's point count is scaled down in proportion (at least 1 each); the
    /// scale depends on the total weight, so above the bound a removal moves somewhat more than
    /// its own keys.
    pub(crate) max_points: usize,
    /// The bounded-load factor `c` (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with
    /// Bounded Loads", SODA 2018): an endpoint may hold at most `⌈c × (total load + 1) × its
    /// weight ÷ total weight⌉` requests; a key whose endpoint is full moves clockwise to the next
    /// endpoint with room. Default 1.25, the paper's recommended trade-off (at most 25 % above
    /// the average, while few keys move). Values ≤ 1 are raised to 1.0001 so that some endpoint
    /// always has room.
    pub(crate) load_factor: f64,
}

impl Default for RingConfig {
    fn default() -> Self {
        Self {
            points_per_weight: 160,
            max_points: 1 << 20,
            load_factor: 1.25,
        }
    }
}

impl RingConfig {
    /// Ring points per unit of weight. Default 160, Ketama's value (Pingora and
    /// nginx-compatible rings): with 160 points an endpoint's share of the ring is within a few
    /// percent of its weight share.
    ///
    /// (at least 1).
    pub fn points_per_weight(mut self, points: u32) -> Self {
        self.points_per_weight = points.max(1);
        self
    }

    /// Upper bound on the ring size. Default 2²⁰ points (16 MiB): within Envoy's range of 1024 to
    /// 8M entries, and enough for 6,500 endpoints of weight 1 at full resolution. When weights ask
    /// for more, every endpoint's point count is scaled down in proportion (at least 1 each); the
    /// scale depends on the total weight, so above the bound a removal moves somewhat more than
    /// its own keys.
    pub fn max_points(mut self, points: usize) -> Self {
        self.max_points = points;
        self
    }

    /// The bounded-load factor `c` (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with
    /// Bounded Loads", SODA 2018): an endpoint may hold at most `⌈c × (total load + 1) × its
    /// weight ÷ total weight⌉` requests; a key whose endpoint is full moves clockwise to the next
    /// endpoint with room. Default 1.25, the paper's recommended trade-off (at most 25 % above
    /// the average, while few keys move). Values ≤ 1 are raised to 1.0001 so that some endpoint
    /// always has room.
    pub fn load_factor(mut self, factor: f64) -> Self {
        self.load_factor = factor;
        self
    }
}

/// What [`HashRing::pick`] needs to know about current load: requests in flight per endpoint
/// index (the order given to [`HashRing::build`]) and their sum, and optionally which endpoints
/// may take a request at all.
///
/// A balancer that already tracks the sum implements this directly; a plain slice works too (its
/// `total` sums the slice, O(n); every endpoint eligible).
pub trait LoadView {
    /// Requests in flight at endpoint `index`.
    fn load(&self, index: usize) -> u64;
    /// Requests in flight over the eligible endpoints.
    fn total(&self) -> u64;
    /// Whether endpoint `index` may take the request (a balancer says no for an ejected, unready
    /// or out-of-tier endpoint). [`HashRing::pick`] walks past an ineligible endpoint as if it
    /// were full, so its keys go to the next endpoints clockwise and come back when it is
    /// eligible again. Default: every endpoint.
    fn eligible(&self, index: usize) -> bool {
        let _ = index;
        true
    }
    /// The summed weight of the eligible endpoints, over which capacity is shared; `None` (the
    /// default) means every endpoint of the ring. Must agree with [`eligible`](Self::eligible).
    fn eligible_weight(&self) -> Option<u64> {
        None
    }
}

impl LoadView for [u64] {
    fn load(&self, index: usize) -> u64 {
        self.get(index).copied().unwrap_or(0)
    }

    fn total(&self) -> u64 {
        self.iter().sum()
    }
}

impl<const N: usize> LoadView for [u64; N] {
    fn load(&self, index: usize) -> u64 {
        self.as_slice().load(index)
    }

    fn total(&self) -> u64 {
        self.as_slice().total()
    }
}

impl LoadView for Vec<u64> {
    fn load(&self, index: usize) -> u64 {
        self.as_slice().load(index)
    }

    fn total(&self) -> u64 {
        self.as_slice().total()
    }
}

/// A consistent-hash ring mapping a 64-bit key hash to an endpoint index.
///
/// Each endpoint gets `weight × points_per_weight` points at
/// `hash_bytes("<addr>-<i>")` (the Ketama scheme, with [`hash_bytes`](super::hash_bytes));
/// a key belongs to the first point at or after its hash, wrapping around. Point positions
/// depend only on the endpoint's address, so:
///
/// - every process with the same endpoint set maps a key to the same endpoint, whatever order the
///   endpoints were given in (ties between equal point hashes go to the smaller address);
/// - removing one of N equally weighted endpoints moves only the keys it owned — about 1/N — and
///   every other key keeps its endpoint (property-tested).
///
/// The ring is immutable: rebuild it when discovery changes (building N endpoints of weight 1
/// costs N × 160 hashes and a sort). Returned indexes refer to the slice given to
/// [`build`](Self::build). Addresses should be unique; a duplicate shares its points with the
/// first.
///
/// ```
/// use mesh_balance::hash::{HashRing, hash_bytes};
/// use mesh_core::{EndpointKey, Weight};
///
/// let endpoints: Vec<(EndpointKey, Weight)> = (1..=3)
///     .map(|i| (EndpointKey(format!("10.0.0.{i}:80").parse().unwrap()), Weight::DEFAULT))
///     .collect();
/// let ring = HashRing::build(&endpoints);
/// let key = hash_bytes(b"session-1234");
/// let home = ring.pick_unbounded(key).unwrap();
/// // With the home endpoint far above its share, the key overflows to the next one.
/// let mut loads = vec![0u64; 3];
/// loads[home] = 10;
/// assert_ne!(ring.pick(key, &loads), Some(home));
/// assert_eq!(ring.pick(key, &[0u64; 3]), Some(home));
/// ```
#[derive(Clone, Debug)]
pub struct HashRing {
    /// Point positions, ascending.
    hashes: Vec<u64>,
    /// `owners[i]` is the endpoint index of point `hashes[i]`.
    owners: Vec<u32>,
    keys: Vec<EndpointKey>,
    weights: Vec<u32>,
    total_weight: u64,
    load_factor: f64,
}

impl HashRing {
    /// A ring with the default [`RingConfig`].
    pub fn build(endpoints: &[(EndpointKey, Weight)]) -> Self {
        Self::with_config(endpoints, &RingConfig::default())
    }

    /// A ring with `config`.
    pub fn with_config(endpoints: &[(EndpointKey, Weight)], config: &RingConfig) -> Self {
        let per_weight = u64::from(config.points_per_weight.max(1));
        let wanted: u64 = endpoints
            .iter()
            .map(|(_, w)| u64::from(w.get()) * per_weight)
            // Weights come from discovery: saturate rather than overflow on absurd ones.
            .fold(0, u64::saturating_add);
        let max = config.max_points.max(endpoints.len()) as u64;
        let scale = if wanted > max {
            max as f64 / wanted as f64
        } else {
            1.0
        };
        let mut points: Vec<(u64, u32)> = Vec::new();
        let mut label = String::new();
        for (index, (key, weight)) in endpoints.iter().enumerate() {
            let count = ((u64::from(weight.get()) * per_weight) as f64 * scale).max(1.0) as u64;
            points.reserve(count as usize);
            // The label of point i is "<addr>-<i>"; hash the "<addr>-" prefix once and continue
            // from a copy of that state for each i (the same bytes, so the same hash, as hashing
            // the whole label).
            label.clear();
            // Writing to a String cannot fail.
            let _ = write!(label, "{}-", key.0);
            let mut prefix = StableHasher::default();
            prefix.write(label.as_bytes());
            let mut digits = [0u8; 20];
            for point in 0..count {
                let mut hasher = prefix;
                hasher.write(decimal(point, &mut digits));
                points.push((hasher.finish(), index as u32));
            }
        }
        // Ties (equal hashes) go to the smaller address, so the order endpoints were given in
        // never matters.
        points.sort_unstable_by(|a, b| {
            (a.0.cmp(&b.0)).then_with(|| endpoints[a.1 as usize].0.cmp(&endpoints[b.1 as usize].0))
        });
        Self {
            hashes: points.iter().map(|p| p.0).collect(),
            owners: points.iter().map(|p| p.1).collect(),
            keys: endpoints.iter().map(|(k, _)| *k).collect(),
            weights: endpoints.iter().map(|(_, w)| w.get()).collect(),
            total_weight: endpoints.iter().map(|(_, w)| u64::from(w.get())).sum(),
            load_factor: if config.load_factor > 1.0 {
                config.load_factor
            } else {
                1.0001
            },
        }
    }

    /// The number of endpoints.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the ring has no endpoints (every pick returns `None`).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The number of points on the ring.
    pub fn points(&self) -> usize {
        self.hashes.len()
    }

    /// The key of endpoint `index`.
    pub fn key(&self, index: usize) -> Option<EndpointKey> {
        self.keys.get(index).copied()
    }

    /// The endpoint owning `hash`, ignoring load; `None` only for an empty ring.
    pub fn pick_unbounded(&self, hash: u64) -> Option<usize> {
        let start = self.start(hash)?;
        Some(self.owners[start] as usize)
    }

    /// The endpoint for `hash` under bounded load: the owner of `hash` if it is eligible and its
    /// load is below its capacity, else the next eligible endpoint clockwise with room. `None` for
    /// an empty ring or when no endpoint is [eligible](LoadView::eligible).
    ///
    /// Capacity of endpoint *i* is `⌈c × (loads.total() + 1) × wᵢ ÷ Σw⌉`, `Σw` over the eligible
    /// endpoints (the `+ 1` counts the request being placed). Since `c > 1` the capacities add up
    /// to more than the total load, so some eligible endpoint always has room; the walk visits at
    /// most every point once. Should the loads be inconsistent (a load above the total), the first
    /// eligible endpoint clockwise is returned.
    pub fn pick<L: LoadView + ?Sized>(&self, hash: u64, loads: &L) -> Option<usize> {
        let start = self.start(hash)?;
        let weight = loads.eligible_weight().unwrap_or(self.total_weight).max(1);
        let budget = self.load_factor * (loads.total() as f64 + 1.0) / weight as f64;
        let mut last = u32::MAX;
        let mut first_eligible = None;
        for offset in 0..self.owners.len() {
            let owner = self.owners[(start + offset) % self.owners.len()];
            if owner == last {
                continue;
            }
            last = owner;
            let index = owner as usize;
            if !loads.eligible(index) {
                continue;
            }
            first_eligible.get_or_insert(index);
            let capacity = (budget * f64::from(self.weights[index])).ceil();
            if (loads.load(index) as f64) < capacity {
                return Some(index);
            }
        }
        first_eligible
    }

    /// Index of the first point at or after `hash`, wrapping.
    fn start(&self, hash: u64) -> Option<usize> {
        if self.hashes.is_empty() {
            return None;
        }
        let at = self.hashes.partition_point(|&h| h < hash);
        Some(if at == self.hashes.len() { 0 } else { at })
    }
}

/// `n` in decimal ASCII, written at the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_matches_display() {
        let mut buf = [0u8; 20];
        for n in [0, 7, 10, 159, 1_000_000, u64::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }
}
