//! [`TriedEndpoints`]: which endpoints earlier attempts of one request went to, so that a retry
//! goes somewhere else.
//!
//! A retry layer and a balancer do not know each other (mesh-retry and mesh-balance depend only on
//! mesh-core), so they meet in the request's extensions:
//!
//! ```text
//! retry layer: inserts one TriedEndpoints in the request  ──►  every attempt carries a clone
//!                                                              (one shared record)
//! balancer:    reserved endpoint already tried and another ready one exists?  →  send there;
//!              then records the endpoint that took the attempt
//! ```
//!
//! Without it, an endpoint that fails fast (a refused connection, an instant `503`) is the
//! cheapest pick for a latency-aware balancer until outlier ejection notices it, and a request can
//! spend every attempt on it. With it, each retry goes to an endpoint the request has not tried,
//! whenever one is eligible and ready; if none is, the balancer's own pick stands.
//!
//! ```
//! use mesh_core::EndpointKey;
//! use mesh_core::attempts::TriedEndpoints;
//!
//! let tried = TriedEndpoints::new();
//! let a = EndpointKey("10.0.0.1:80".parse().unwrap());
//! let shared = tried.clone(); // what an attempt's extensions carry
//! shared.record(a);
//! assert!(tried.contains(&a));
//! assert_eq!(tried.len(), 1);
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::EndpointKey;

/// How many endpoints a [`TriedEndpoints`] remembers: the most recent ones, enough for any
/// sensible number of attempts (retry layers default to 3).
pub const MAX_TRIED: usize = 4;

/// The endpoints the attempts of one request went to, shared by every clone (a retry layer puts
/// one in the request, each attempt's extensions carry a clone). Remembers the last
/// [`MAX_TRIED`]; one allocation, when created.
#[derive(Clone, Default)]
pub struct TriedEndpoints(Arc<Mutex<Tried>>);

#[derive(Default)]
struct Tried {
    keys: [Option<EndpointKey>; MAX_TRIED],
    /// Slot the next key goes to (oldest first once full).
    next: usize,
}

impl TriedEndpoints {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Tried) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Notes that an attempt went to `key` (once per key; the oldest is forgotten when full).
    pub fn record(&self, key: EndpointKey) {
        self.with(|tried| {
            if tried.keys.contains(&Some(key)) {
                return;
            }
            let slot = tried.next;
            tried.keys[slot] = Some(key);
            tried.next = (slot + 1) % MAX_TRIED;
        });
    }

    /// Whether an attempt went to `key`.
    pub fn contains(&self, key: &EndpointKey) -> bool {
        self.with(|tried| tried.keys.contains(&Some(*key)))
    }

    /// How many endpoints are remembered.
    pub fn len(&self) -> usize {
        self.with(|tried| tried.keys.iter().flatten().count())
    }

    /// Whether no attempt has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for TriedEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with(|tried| f.debug_list().entries(tried.keys.iter().flatten()).finish())
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
