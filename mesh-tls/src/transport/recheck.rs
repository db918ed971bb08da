//! Re-checking live connections when the trust bundles change
//! ([`TlsAcceptor::recheck_connections_on_bundle_change`](super::TlsAcceptor::recheck_connections_on_bundle_change)
//! for inbound connections,
//! [`TlsConnector::recheck_connections_on_bundle_change`](super::TlsConnector::recheck_connections_on_bundle_change)
//! for outbound ones).
//!
//! A TLS session keeps the trust decision made at its handshake: removing a root from the bundles
//! stops new handshakes with certificates of that root, but connections already open from such
//! peers carry on for as long as they live (for pooled HTTP/2 connections, possibly days). When the
//! option is on, the acceptor keeps each live connection's peer chain, as the handshake saw it,
//! next to the connection's [`CloseHandle`]; a watcher task waits for the identity source to
//! publish different bundles, verifies every kept chain again and asks the connections whose
//! chain fails to close gracefully (mesh-core's server finishes their requests in progress first).
//! Outbound, the same is done with the server chains the connector saw, and the handle is the one
//! mesh-core's `HttpClient` gives its connector
//! ([`connection_close_handle`](mesh_core::client::connection_close_handle)): the client stops
//! sending new requests on the connection and lets those in progress finish, so the next request
//! runs a new handshake against the new bundles. Each connection is judged by its own chain, so
//! connections to peers still trusted are kept.
//!
//! Chains are verified **as of their handshake**: the question asked is "would the new bundles
//! have accepted this peer?", not "is its certificate still valid today?". So only a trust change
//! closes connections; a peer certificate that expires during a long connection does not (as in
//! Linkerd and ztunnel; that would be another policy).

use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};
use std::task::Poll;
use std::time::Duration;

use mesh_core::server::CloseHandle;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter};
use rustls_pki_types::{CertificateDer, UnixTime};
use tokio::sync::oneshot;

use crate::rotation::IdentityWatch;
use crate::{SpiffeId, SvidError, SvidVerifier, TrustBundleSet};

/// Chains verified between two yields to the runtime during a re-check, so a pass over many
/// connections (each verification is a signature check or two, tens of microseconds) does not hold
/// a runtime thread for long.
const VERIFY_BATCH: usize = 64;

/// The list is pruned of ended connections when it reaches this length, then at twice its length
/// after each pruning: pruning stays amortised O(1) per connection.
const MIN_PRUNE_AT: usize = 64;

/// How often the watcher task also prunes the list, whatever its length. Pruning on growth alone
/// keeps, after a burst of connections that all ended, every one of their chains (1 to 2 KB
/// each) until as many new connections come, which in an idle process is never. Every 30 s, like
/// the server's idle timeout: the time scale on which connections come and go anyway, and a
/// pass over the list per half minute costs nothing measurable.
const PRUNE_INTERVAL: Duration = Duration::from_secs(30);

/// Which side of the handshake the tracked peers were: it picks the verification (client or server
/// certificate) and names the direction in logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// Connections accepted: the peers are clients.
    Inbound,
    /// Connections made: the peers are servers.
    Outbound,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Inbound => "inbound",
            Side::Outbound => "outbound",
        }
    }
}

/// One live connection: what its peer presented, and how to close it.
struct Tracked {
    /// The peer's chain, leaf first, as the handshake saw it.
    chain: Vec<CertificateDer<'static>>,
    /// When the handshake verified it; re-checks verify as of this time.
    verified_at: UnixTime,
    id: SpiffeId,
    peer: SocketAddr,
    close: CloseHandle,
    /// Set by the check that closes it, so a close is counted and logged once.
    closed: AtomicBool,
}

struct Table {
    connections: Vec<Arc<Tracked>>,
    prune_at: usize,
}

/// The live connections of one [`TlsAcceptor`](super::TlsAcceptor) or
/// [`TlsConnector`](super::TlsConnector) and the bundles watcher. Shared by its clones; the
/// watcher task ends when the last clone is dropped.
pub(super) struct LiveConnections {
    side: Side,
    verifier: SvidVerifier,
    identity: IdentityWatch,
    table: Mutex<Table>,
    closed: Counter<u64>,
    watcher: Once,
    /// Dropped with `self`, which ends the watcher task.
    _stop: oneshot::Sender<()>,
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

impl LiveConnections {
    pub(super) fn new(
        side: Side,
        verifier: SvidVerifier,
        identity: IdentityWatch,
        meter: &Meter,
    ) -> Self {
        let closed = meter
            .u64_counter("mesh.tls.connections.closed")
            .with_description(
                "Live TLS connections asked to close gracefully, by reason (bundle_change: the \
                 peer's chain no longer verifies against the current trust bundles)",
            )
            .build();
        // At 0 from the start, so Prometheus' `increase()` sees the first close.
        closed.add(0, &attributes(side));
        let (stop, stopped) = oneshot::channel();
        Self {
            side,
            verifier,
            identity,
            table: Mutex::new(Table {
                connections: Vec::new(),
                prune_at: MIN_PRUNE_AT,
            }),
            closed,
            watcher: Once::new(),
            _stop: stop,
            stopped: Mutex::new(Some(stopped)),
        }
    }

    /// The tracker of a connector or an acceptor whose option is `recheck`: `None` when it is
    /// off. Counted in `meter`, `opentelemetry::global::meter("mesh-tls")` when unset.
    pub(super) fn when(
        recheck: bool,
        side: Side,
        verifier: &SvidVerifier,
        identity: &IdentityWatch,
        meter: Option<&Meter>,
    ) -> Option<Arc<Self>> {
        recheck.then(|| {
            let meter = meter
                .cloned()
                .unwrap_or_else(|| opentelemetry::global::meter("mesh-tls"));
            Arc::new(Self::new(side, verifier.clone(), identity.clone(), &meter))
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Each update is one Vec operation: a panic cannot leave the table half-updated.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the watcher task on first use (inside the runtime) and returns the bundles in force
    /// now; call it before the handshake and pass the result to [`track`](Self::track).
    pub(super) fn before_handshake(self: &Arc<Self>) -> Arc<TrustBundleSet> {
        let bundles = self.identity.current().bundles().clone();
        self.watcher.call_once(|| {
            let stopped = self
                .stopped
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let Some(stopped) = stopped {
                tokio::spawn(watch_bundles(
                    Arc::downgrade(self),
                    self.identity.clone(),
                    bundles.clone(),
                    stopped,
                ));
            }
        });
        bundles
    }

    /// Keeps a connection whose handshake verified `chain`, started when `before` were the bundles.
    /// When the bundles changed during the handshake and the new ones refuse `chain`, the
    /// connection is closed at once and the reason returned.
    pub(super) fn track(
        &self,
        chain: Vec<CertificateDer<'static>>,
        id: SpiffeId,
        peer: SocketAddr,
        close: CloseHandle,
        before: &Arc<TrustBundleSet>,
    ) -> Result<(), SvidError> {
        let tracked = Arc::new(Tracked {
            chain,
            verified_at: UnixTime::now(),
            id,
            peer,
            close,
            closed: AtomicBool::new(false),
        });
        let mut table = self.table();
        table.connections.push(tracked.clone());
        if table.connections.len() >= table.prune_at {
            table.connections.retain(|c| !c.close.is_finished());
            table.prune_at = (table.connections.len() * 2).max(MIN_PRUNE_AT);
        }
        // A re-check that started after the handshake may have missed this connection; checking
        // the bundles under the lock the re-check takes its list under closes that gap.
        let current = self.identity.current().bundles().clone();
        drop(table);
        if !Arc::ptr_eq(&current, before) && !same_roots(&current, before) {
            return self.check(&tracked);
        }
        Ok(())
    }

    /// Drops the entries of connections that ended or are closing, and gives back most of the
    /// list's capacity when it shrank to under a quarter of it.
    fn prune(&self) -> MutexGuard<'_, Table> {
        let mut table = self.table();
        table
            .connections
            .retain(|c| !c.close.is_finished() && !c.close.is_close_requested());
        let len = table.connections.len();
        table.prune_at = (len * 2).max(MIN_PRUNE_AT);
        if table.connections.capacity() > (len * 4).max(MIN_PRUNE_AT) {
            table.connections.shrink_to((len * 2).max(MIN_PRUNE_AT));
        }
        table
    }

    /// Verifies every live chain against the current bundles; closes those that fail.
    async fn recheck(&self) {
        let connections = self.prune().connections.clone();
        for batch in connections.chunks(VERIFY_BATCH) {
            for tracked in batch {
                // Logged and counted by `check`; nobody waits for the reason here.
                let _ = self.check(tracked);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Closes `tracked`'s connection if its chain fails against the current bundles, and says why.
    fn check(&self, tracked: &Tracked) -> Result<(), SvidError> {
        if tracked.close.is_finished() || tracked.close.is_close_requested() {
            return Ok(());
        }
        let Some((leaf, intermediates)) = tracked.chain.split_first() else {
            return Ok(());
        };
        let verified = match self.side {
            Side::Inbound => self
                .verifier
                .verify_client(leaf, intermediates, tracked.verified_at),
            Side::Outbound => self
                .verifier
                .verify_server(leaf, intermediates, tracked.verified_at),
        };
        if let Err(error) = verified
            && !tracked.closed.swap(true, Ordering::AcqRel)
        {
            tracked.close.close();
            self.closed.add(1, &attributes(self.side));
            tracing::info!(
                direction = self.side.as_str(),
                peer = %tracked.peer,
                id = %tracked.id,
                %error,
                "closing a connection gracefully: its peer certificate no longer verifies against the new trust bundles"
            );
            return Err(error);
        }
        Ok(())
    }
}

/// The attributes of a close: its reason, and whether the connection was accepted or made.
fn attributes(side: Side) -> [KeyValue; 2] {
    [
        KeyValue::new("reason", "bundle_change"),
        KeyValue::new("direction", side.as_str()),
    ]
}

/// Waits for bundles different from `seen` and re-checks; ends when the acceptor or the source
/// is gone.
async fn watch_bundles(
    live: Weak<LiveConnections>,
    mut identity: IdentityWatch,
    mut seen: Arc<TrustBundleSet>,
    stopped: oneshot::Receiver<()>,
) {
    let mut stopped = pin!(stopped);
    let mut prune = pin!(tokio::time::sleep(PRUNE_INTERVAL));
    loop {
        let changed = {
            let mut changed = pin!(identity.changed());
            poll_fn(|cx| {
                if stopped.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(false));
                }
                if let Poll::Ready(changed) = changed.as_mut().poll(cx) {
                    return Poll::Ready(Some(changed));
                }
                prune.as_mut().poll(cx).map(|()| None)
            })
            .await
        };
        let changed = match changed {
            Some(changed) => changed,
            None => {
                prune
                    .as_mut()
                    .reset(tokio::time::Instant::now() + PRUNE_INTERVAL);
                let Some(live) = live.upgrade() else {
                    return;
                };
                drop(live.prune());
                continue;
            }
        };
        if !changed {
            return;
        }
        let current = identity.current().bundles().clone();
        // A new SVID comes with the same bundles: nothing to re-check.
        if same_roots(&current, &seen) {
            continue;
        }
        seen = current;
        let Some(live) = live.upgrade() else {
            return;
        };
        live.recheck().await;
    }
}

/// Whether two bundle sets trust the same roots for the same trust domains.
fn same_roots(a: &TrustBundleSet, b: &TrustBundleSet) -> bool {
    a.len() == b.len()
        && a.iter().all(|(trust_domain, bundle)| {
            b.get(trust_domain)
                .is_some_and(|other| other.roots() == bundle.roots())
        })
}

impl fmt::Debug for LiveConnections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveConnections")
            .field("side", &self.side)
            .field("tracked", &self.table().connections.len())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, feature = "test-ca"))]
mod tests {
    use super::*;
    use crate::rotation::WorkloadIdentity;
    use crate::test_ca::TestCa;

    fn bundles(cas: &[&TestCa]) -> Arc<TrustBundleSet> {
        let roots = cas.iter().flat_map(|ca| ca.roots()).collect();
        let td = cas[0].trust_domain().clone();
        Arc::new(TrustBundleSet::new().with(td, roots).unwrap())
    }

    #[tokio::test]
    async fn bundles_replaced_during_a_handshake_are_checked_when_it_is_tracked() {
        let (a, b) = (TestCa::new("prod.example"), TestCa::new("prod.example"));
        let server = b.issue("/server").svid();
        let (publish, identity) =
            IdentityWatch::channel(WorkloadIdentity::new(server.clone(), bundles(&[&a, &b])));
        let verifier = SvidVerifier::watching(identity.clone(), &crate::crypto_provider());
        let meter = opentelemetry::global::meter("test");
        let live = Arc::new(LiveConnections::new(
            Side::Inbound,
            verifier,
            identity,
            &meter,
        ));
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let track = |ca: &TestCa, before: &Arc<TrustBundleSet>| {
            let svid = ca.issue("/client");
            let id = crate::spiffe_id_of(&svid.chain()[0]).unwrap();
            let close = CloseHandle::new();
            // The server's clone: without it the handle would count as finished.
            let served = close.clone();
            let outcome = live.track(svid.chain().to_vec(), id, peer, close, before);
            (served, outcome)
        };

        // Nothing changed during the handshake: no check.
        let before = live.before_handshake();
        let (served, outcome) = track(&a, &before);
        assert!(!served.is_close_requested());
        assert_eq!(outcome, Ok(()));

        // Root A is removed while a handshake runs; the watcher task has not run yet (this
        // runtime has one thread and the test has not yielded), so only `track` can notice,
        // and says why (the connector refuses the connection with it).
        let before = live.before_handshake();
        publish.send_replace(Arc::new(WorkloadIdentity::new(server, bundles(&[&b]))));
        let (served, outcome) = track(&a, &before);
        assert!(served.is_close_requested());
        assert!(outcome.is_err());
        let (served, outcome) = track(&b, &before);
        assert!(!served.is_close_requested());
        assert_eq!(outcome, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn ended_connections_are_forgotten_without_new_ones() {
        let ca = TestCa::new("prod.example");
        let (_publish, identity) = IdentityWatch::channel(WorkloadIdentity::new(
            ca.issue("/server").svid(),
            bundles(&[&ca]),
        ));
        let verifier = SvidVerifier::watching(identity.clone(), &crate::crypto_provider());
        let meter = opentelemetry::global::meter("test");
        let live = Arc::new(LiveConnections::new(
            Side::Inbound,
            verifier,
            identity,
            &meter,
        ));
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let svid = ca.issue("/client");
        let id = crate::spiffe_id_of(&svid.chain()[0]).unwrap();
        // A burst of 1 000 connections; one stays open, the others end.
        let before = live.before_handshake();
        let mut open = Vec::new();
        for _ in 0..1_000 {
            let close = CloseHandle::new();
            open.push(close.clone());
            live.track(svid.chain().to_vec(), id.clone(), peer, close, &before)
                .unwrap();
        }
        open.truncate(1);
        assert!(live.table().connections.len() > 1);

        tokio::time::sleep(PRUNE_INTERVAL + Duration::from_secs(1)).await;
        let table = live.table();
        assert_eq!(
            table.connections.len(),
            1,
            "only the open connection is kept"
        );
        assert!(table.connections.capacity() <= 2 * MIN_PRUNE_AT);
    }

    #[test]
    fn same_roots_compares_contents_not_pointers() {
        let (a, b) = (TestCa::new("prod.example"), TestCa::new("prod.example"));
        assert!(same_roots(&bundles(&[&a, &b]), &bundles(&[&a, &b])));
        assert!(!same_roots(&bundles(&[&a, &b]), &bundles(&[&b])));
        assert!(!same_roots(&bundles(&[&a]), &bundles(&[&b])));
        let other = TestCa::new("partner.example");
        let mut both = (*bundles(&[&a])).clone();
        both.insert(other.trust_domain().clone(), other.roots())
            .unwrap();
        assert!(!same_roots(&both, &bundles(&[&a])));
    }
}
