//! The one place where a whole endpoint snapshot becomes a list of changes.

use std::collections::{BTreeMap, VecDeque};

use mesh_core::{Endpoint, EndpointKey};
use tower::discover::Change;

/// Turns successive whole snapshots of an endpoint set into `Insert` / `Remove` changes.
///
/// Sources that learn the full set at once (the run-time handle, the file source, DNS) feed each
/// snapshot to [`update`](SnapshotDiffer::update) and hand out the queued changes with
/// [`next_change`](SnapshotDiffer::next_change). Guarantees:
///
/// - an endpoint that is unchanged (equal in every field) produces no change at all;
/// - a key whose endpoint changed (new weight, locality, identity or labels) produces one `Insert`,
///   which replaces the old value — never a `Remove` followed by an `Insert`, so in-flight requests
///   on that address are not disturbed;
/// - `Remove` is produced only for keys absent from the new snapshot;
/// - within one snapshot, all `Insert`s come before all `Remove`s, so a consumer replacing every
///   endpoint never passes through an empty set; each group is ordered by key, so the output is
///   deterministic;
/// - if a snapshot names a key twice, the later endpoint wins.
///
/// Changes are queued, not coalesced: if a second snapshot arrives before the queue is drained, its
/// changes are appended and applying the whole queue in order still yields the newest snapshot.
/// The sources in this module only fetch a new snapshot once the queue is empty, so the queue holds
/// at most one snapshot's worth of changes.
///
/// ```
/// use mesh_balance::discover::SnapshotDiffer;
/// use mesh_core::Endpoint;
/// use tower::discover::Change;
///
/// let a = Endpoint::new("10.0.0.1:80".parse().unwrap());
/// let b = Endpoint::new("10.0.0.2:80".parse().unwrap());
/// let mut differ = SnapshotDiffer::new();
/// differ.update([a.clone(), b.clone()]);
/// differ.update([b.clone()]);
/// let changes: Vec<_> = std::iter::from_fn(|| differ.next_change()).collect();
/// assert!(matches!(&changes[..], [
///     Change::Insert(_, _), Change::Insert(_, _), Change::Remove(k),
/// ] if *k == a.key()));
/// assert_eq!(differ.len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct SnapshotDiffer {
    current: BTreeMap<EndpointKey, Endpoint>,
    pending: VecDeque<Change<EndpointKey, Endpoint>>,
}

impl SnapshotDiffer {
    /// An empty set with no pending changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the set with `snapshot` and queues the changes that lead there.
    ///
    /// Returns how many changes were queued (0 when the snapshot equals the current set).
    pub fn update(&mut self, snapshot: impl IntoIterator<Item = Endpoint>) -> usize {
        let next: BTreeMap<EndpointKey, Endpoint> =
            snapshot.into_iter().map(|ep| (ep.key(), ep)).collect();
        let before = self.pending.len();
        for (key, ep) in &next {
            if self.current.get(key) != Some(ep) {
                self.pending.push_back(Change::Insert(*key, ep.clone()));
            }
        }
        for key in self.current.keys() {
            if !next.contains_key(key) {
                self.pending.push_back(Change::Remove(*key));
            }
        }
        self.current = next;
        self.pending.len() - before
    }

    /// Queues the change that adds or replaces one endpoint (nothing if it is already present
    /// unchanged).
    pub fn insert(&mut self, endpoint: Endpoint) {
        let key = endpoint.key();
        if self.current.get(&key) != Some(&endpoint) {
            self.current.insert(key, endpoint.clone());
            self.pending.push_back(Change::Insert(key, endpoint));
        }
    }

    /// Queues the removal of one key (nothing if it is absent).
    pub fn remove(&mut self, key: &EndpointKey) {
        if self.current.remove(key).is_some() {
            self.pending.push_back(Change::Remove(*key));
        }
    }

    /// The oldest queued change, if any.
    pub fn next_change(&mut self) -> Option<Change<EndpointKey, Endpoint>> {
        self.pending.pop_front()
    }

    /// Whether changes are waiting to be taken.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The endpoint currently known under `key`.
    pub fn get(&self, key: &EndpointKey) -> Option<&Endpoint> {
        self.current.get(key)
    }

    /// The current set (after every queued change), ordered by key.
    pub fn endpoints(&self) -> impl ExactSizeIterator<Item = &Endpoint> {
        self.current.values()
    }

    /// How many endpoints the current set holds.
    pub fn len(&self) -> usize {
        self.current.len()
    }

    /// Whether the current set is empty.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }
}
