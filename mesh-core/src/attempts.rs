//! Which endpoints earlier attempts of one request went to, so that a retry goes somewhere else.
//!
//! A retry layer and a balancer do not know each other (mesh-retry and mesh-balance depend only on
//! mesh-core), so they meet in the request's extensions. Two ways are understood:
//!
//! ```text
//! AvoidTried (what mesh-retry's layer uses; nothing on the first attempt)
//!   retry layer: sends every attempt of a request through the same service instance, and marks
//!                each retry with AvoidTried (a zero-sized marker)
//!   balancer:    remembers, per instance, the endpoints the attempts of its current request went
//!                to (a request without the marker starts a new list); for a marked retry whose
//!                reserved endpoint is on the list, sends it to an untried ready one instead
//!
//! TriedEndpoints (for a retry layer that cannot call one instance for every attempt)
//!   retry layer: inserts one shared record in the request; every attempt carries a clone
//!   balancer:    avoids the endpoints the record names, then records the one that took it
//! ```
//!
//! Without either, an endpoint that fails fast (a refused connection, an instant `503`) is the
//! cheapest pick for a latency-aware balancer until outlier ejection notices it, and a request can
//! spend every attempt on it. With them, each retry goes to an endpoint the request has not tried,
//! whenever one is eligible and ready; if none is, the balancer's own pick stands.
//!
//! The marker costs nothing on the first attempt (no allocation; a request that succeeds at once
//! carries nothing), which is why mesh-retry uses it; it relies on the retry layer calling the
//! instance it owns for each attempt, with nothing in between that hands the attempts to other
//! instances (a `Buffer`, say). The shared record costs an allocation per request and works
//! whatever sits in between.
//!
//! ```
//! use mesh_core::EndpointKey;
//! use mesh_core::attempts::{TriedEndpoints, TriedKeys};
//!
//! let tried = TriedEndpoints::new();
//! let a = EndpointKey("10.0.0.1:80".parse().unwrap());
//! let shared = tried.clone(); // what an attempt's extensions carry
//! shared.record(a);
//! assert!(tried.contains(&a));
//! assert_eq!(tried.len(), 1);
//!
//! // What a balancer instance keeps inline for the marker.
//! let mut own = TriedKeys::new();
//! own.record(a);
//! assert_eq!(own, tried.snapshot());
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::EndpointKey;

/// How many endpoints a [`TriedEndpoints`] remembers: the most recent ones, enough for any
/// sensible number of attempts (retry layers default to 3).
pub const MAX_TRIED: usize = 4;

/// Marks a request as a retry of the request the same service instance carried last: a balancer
/// avoids the endpoints that instance sent the earlier attempts to (see the [module](self) docs).
/// Zero-sized, so putting it in an existing extensions map allocates nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AvoidTried;

/// The last [`MAX_TRIED`] endpoints the attempts of one request went to, inline (no allocation):
/// what a balancer instance keeps for [`AvoidTried`], and a snapshot of a [`TriedEndpoints`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TriedKeys {
    keys: [Option<EndpointKey>; MAX_TRIED],
    /// Slot the next key goes to (oldest first once full).
    next: usize,
}

impl TriedKeys {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that an attempt went to `key` (once per key; the oldest is forgotten when full).
    pub fn record(&mut self, key: EndpointKey) {
        if self.contains(&key) {
            return;
        }
        self.keys[self.next] = Some(key);
        self.next = (self.next + 1) % MAX_TRIED;
    }

    /// Whether an attempt went to `key`.
    pub fn contains(&self, key: &EndpointKey) -> bool {
        self.keys.contains(&Some(*key))
    }

    /// How many endpoints are remembered.
    pub fn len(&self) -> usize {
        self.keys.iter().flatten().count()
    }

    /// Whether no attempt has been recorded.
    pub fn is_empty(&self) -> bool {
        self.keys.iter().all(Option::is_none)
    }

    /// Forgets every endpoint (a new request starts).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// The endpoints remembered (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = &EndpointKey> {
        self.keys.iter().flatten()
    }
}

/// The endpoints the attempts of one request went to, shared by every clone (a retry layer puts
/// one in the request, each attempt's extensions carry a clone). Remembers the last
/// [`MAX_TRIED`]; one allocation, when created.
#[derive(Clone, Default)]
pub struct TriedEndpoints(Arc<Mutex<TriedKeys>>);

impl TriedEndpoints {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut TriedKeys) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Notes that an attempt went to `key` (once per key; the oldest is forgotten when full).
    pub fn record(&self, key: EndpointKey) {
        self.with(|tried| tried.record(key));
    }

    /// Whether an attempt went to `key`.
    pub fn contains(&self, key: &EndpointKey) -> bool {
        self.with(|tried| tried.contains(key))
    }

    /// How many endpoints are remembered.
    pub fn len(&self) -> usize {
        self.with(|tried| tried.len())
    }

    /// Whether no attempt has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The endpoints recorded so far, copied out.
    pub fn snapshot(&self) -> TriedKeys {
        self.with(|tried| *tried)
    }
}

impl fmt::Debug for TriedEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with(|tried| f.debug_list().entries(tried.iter()).finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> EndpointKey {
        EndpointKey(([127, 0, 0, 1], port).into())
    }

    #[test]
    fn clones_share_one_record_and_keys_count_once() {
        let tried = TriedEndpoints::new();
        assert!(tried.is_empty());
        let clone = tried.clone();
        clone.record(key(1));
        clone.record(key(1));
        tried.record(key(2));
        assert_eq!(tried.len(), 2);
        assert!(clone.contains(&key(2)) && tried.contains(&key(1)));
        assert!(!tried.contains(&key(3)));
        assert_eq!(
            format!("{tried:?}"),
            "[EndpointKey(127.0.0.1:1), EndpointKey(127.0.0.1:2)]"
        );
    }

    #[test]
    fn inline_keys_clear_and_match_a_snapshot() {
        let mut own = TriedKeys::new();
        let shared = TriedEndpoints::new();
        for port in 1..=3 {
            own.record(key(port));
            shared.record(key(port));
        }
        own.record(key(2));
        assert_eq!(own.len(), 3);
        assert_eq!(own, shared.snapshot());
        own.clear();
        assert!(own.is_empty() && !own.contains(&key(1)));
        assert_eq!(std::mem::size_of::<AvoidTried>(), 0);
    }

    #[test]
    fn the_oldest_is_forgotten_when_full() {
        let tried = TriedEndpoints::new();
        for port in 1..=u16::try_from(MAX_TRIED).unwrap() + 1 {
            tried.record(key(port));
        }
        assert_eq!(tried.len(), MAX_TRIED);
        assert!(!tried.contains(&key(1)));
        assert!(tried.contains(&key(2)) && tried.contains(&key(5)));
    }
}
