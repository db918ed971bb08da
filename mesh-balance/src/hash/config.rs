//! [`HashConfig`]: consistent hashing as a balancer mode.

use super::{HashKey, RingConfig};

/// Turns a [`Balance`](crate::Balance) sticky: requests carrying its key go to the
/// endpoint the [`HashRing`](super::HashRing) maps the key to (under bounded load); requests
/// without it are balanced as usual. Set with
/// [`BalanceConfig::hash`](crate::BalanceConfig::hash); see the
/// [balancer docs](crate::balance#consistent-hashing) for how it combines with readiness,
/// ejection and locality.
///
/// There is no `Default`: which part of a request identifies a session is the application's
/// choice, and a guessed one (the path, say) would silently pin hot paths to single endpoints.
///
/// ```
/// use http::HeaderName;
/// use mesh_balance::BalanceConfig;
/// use mesh_balance::hash::{HashConfig, HashKey};
///
/// let sticky = HashConfig::new(HashKey::header(HeaderName::from_static("x-session")))
///     .load_factor(1.5);
/// let config = BalanceConfig::default().hash(sticky);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct HashConfig {
    /// The part of the request that is hashed.
    pub(crate) key: HashKey,
    /// The ring: points per weight, size bound and the bounded-load factor `c`. Default
    /// [`RingConfig::default`] (160 points per weight, `c` = 1.25, the values of Ketama and of
    /// the bounded-load paper, see [`RingConfig`]).
    pub(crate) ring: RingConfig,
}

impl HashConfig {
    /// Hashing on `key`, with the default ring.
    pub fn new(key: HashKey) -> Self {
        Self {
            key,
            ring: RingConfig::default(),
        }
    }

    /// Sets the ring's bounded-load factor `c` ([`RingConfig::load_factor`]); must be above 1.
    #[must_use]
    pub fn load_factor(mut self, factor: f64) -> Self {
        self.ring.load_factor = factor;
        self
    }

    /// The ring: points per weight, size bound and the bounded-load factor `c`. Default
    /// [`RingConfig::default`] (160 points per weight, `c` = 1.25, the values of Ketama and of
    /// the bounded-load paper, see [`RingConfig`]).
    #[must_use]
    pub fn ring(mut self, ring: RingConfig) -> Self {
        self.ring = ring;
        self
    }
}
