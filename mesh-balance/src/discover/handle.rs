//! Endpoints set at run time through a cloneable handle.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use mesh_core::{Endpoint, EndpointKey};
use tokio::sync::watch;
use tower::discover::Change;

use super::SnapshotDiffer;

type EndpointMap = BTreeMap<EndpointKey, Endpoint>;

/// Sets, inserts and removes endpoints at run time; every [`HandleDiscover`] stream follows.
///
/// Backed by a `tokio::sync::watch` channel: each update replaces the shared set and wakes the
/// streams, which diff the newest set against what they last emitted. Updates made faster than a
/// stream is polled coalesce — the stream emits the net difference, never a stale intermediate set
/// (an endpoint inserted and removed in between is never seen).
///
/// `Clone` shares the same set: all clones update it, and all streams see it. When every handle is
/// dropped the streams **keep the last set and stay pending forever** (they do not end and do not
/// remove anything): losing the control plane must not drain the data plane.
///
/// ```
/// use mesh_balance::discover::DiscoverHandle;
/// use mesh_core::Endpoint;
/// use tower::discover::Change;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let handle = DiscoverHandle::new();
/// let mut discover = handle.discover();
/// let ep = Endpoint::new("10.0.0.1:80".parse().unwrap());
/// handle.insert(ep.clone());
/// let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut discover).poll_next_change(cx)).await;
/// assert!(matches!(next, Change::Insert(key, _) if key == ep.key()));
/// assert_eq!(handle.remove(&ep.key()), Some(ep));
/// # }
/// ```
#[derive(Clone)]
pub struct DiscoverHandle {
    tx: watch::Sender<EndpointMap>,
}

impl DiscoverHandle {
    /// A handle with an empty set.
    pub fn new() -> Self {
        Self {
            tx: watch::Sender::new(EndpointMap::new()),
        }
    }

    /// Replaces the whole set (later duplicates of an address win).
    ///
    /// Streams emit only the difference: unchanged endpoints produce nothing, changed ones an
    /// `Insert`, missing ones a `Remove`.
    pub fn set(&self, endpoints: impl IntoIterator<Item = Endpoint>) {
        let next: EndpointMap = endpoints.into_iter().map(|ep| (ep.key(), ep)).collect();
        self.tx.send_if_modified(|map| {
            let changed = *map != next;
            if changed {
                *map = next;
            }
            changed
        });
    }

    /// Adds an endpoint or replaces the one at the same address; returns the replaced one.
    pub fn insert(&self, endpoint: Endpoint) -> Option<Endpoint> {
        let mut previous = None;
        self.tx.send_if_modified(|map| {
            previous = map.insert(endpoint.key(), endpoint.clone());
            previous.as_ref() != Some(&endpoint)
        });
        previous
    }

    /// Removes the endpoint at `key`; returns it, or `None` if there was none.
    pub fn remove(&self, key: &EndpointKey) -> Option<Endpoint> {
        let mut removed = None;
        self.tx.send_if_modified(|map| {
            removed = map.remove(key);
            removed.is_some()
        });
        removed
    }

    /// The current set, ordered by key.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.tx.borrow().values().cloned().collect()
    }

    /// A new stream of changes: first one `Insert` per endpoint in the current set, then the
    /// difference after each update.
    pub fn discover(&self) -> HandleDiscover {
        HandleDiscover {
            rx: Some(self.tx.subscribe()),
            seen_initial: false,
            changed: None,
            differ: SnapshotDiffer::new(),
        }
    }
}

impl Default for DiscoverHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl FromIterator<Endpoint> for DiscoverHandle {
    fn from_iter<I: IntoIterator<Item = Endpoint>>(iter: I) -> Self {
        let handle = Self::new();
        handle.set(iter);
        handle
    }
}

impl fmt::Debug for DiscoverHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoverHandle")
            .field("endpoints", &self.tx.borrow().len())
            .field("streams", &self.tx.receiver_count())
            .finish()
    }
}

type ChangedFuture =
    Pin<Box<dyn Future<Output = Option<watch::Receiver<EndpointMap>>> + Send + 'static>>;

/// The change stream of a [`DiscoverHandle`]; see there for the guarantees.
///
/// Never ends and never fails (error type [`Infallible`]). Waiting for the next update allocates
/// one small boxed future per update (the watch channel's `changed()` borrows the receiver), which
/// is off the request path.
pub struct HandleDiscover {
    /// `None` once every handle is gone: the stream then stays pending with its last set.
    rx: Option<watch::Receiver<EndpointMap>>,
    seen_initial: bool,
    changed: Option<ChangedFuture>,
    differ: SnapshotDiffer,
}

impl HandleDiscover {
    /// Polls for the next change; the stream never ends, so there is always one eventually.
    pub fn poll_next_change(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Change<EndpointKey, Endpoint>> {
        loop {
            if let Some(change) = self.differ.next_change() {
                return Poll::Ready(change);
            }
            if !self.seen_initial {
                self.seen_initial = true;
                if let Some(rx) = self.rx.as_mut() {
                    self.differ.update(rx.borrow_and_update().values().cloned());
                }
                continue;
            }
            if self.changed.is_none()
                && let Some(mut rx) = self.rx.take()
            {
                self.changed = Some(Box::pin(
                    async move { rx.changed().await.ok().map(|()| rx) },
                ));
            }
            // No future and no receiver: every handle is gone, keep the last set.
            let Some(fut) = self.changed.as_mut() else {
                return Poll::Pending;
            };
            let rx = std::task::ready!(fut.as_mut().poll(cx));
            self.changed = None;
            if let Some(mut rx) = rx {
                self.differ.update(rx.borrow_and_update().values().cloned());
                self.rx = Some(rx);
            }
        }
    }
}

impl Stream for HandleDiscover {
    type Item = Result<Change<EndpointKey, Endpoint>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .poll_next_change(cx)
            .map(|change| Some(Ok(change)))
    }
}

impl fmt::Debug for HandleDiscover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleDiscover")
            .field("endpoints", &self.differ.len())
            .field(
                "handles_alive",
                &(self.rx.is_some() || self.changed.is_some()),
            )
            .finish()
    }
}
