//! [`Registry`]: the server's live connections, what each is doing, and who holds how many.
//!
//! Three bounds need to know more about a connection than "it exists": the idle timeout (has it
//! had no request in progress for long enough?), eviction at the connection limit (which
//! connection has been idle the longest?) and the per-peer cap (how many connections does this IP
//! address hold?). hyper reports none of these, so the server counts them itself: every request
//! holds an [`OpenRequest`] from the moment hyper hands it to the service until its response body
//! is finished or dropped, and each connection's [`Activity`] turns that into "busy" or "idle
//! since".
//!
//! The hot path (a request starting or ending) touches only its own connection's atomics; the
//! registry's lock is taken when a connection opens or closes, when choosing a connection to
//! evict, which scans every connection (only at the limit, where closing one is worth it), and
//! once at shutdown to wake every connection to drain.
//!
//! A request ending wakes its connection's task only when the task has something to do about
//! the new idle period: when it is closing, or when its timer would not fire by the period's
//! earliest deadline (the task then arms it). Otherwise the timer, armed for an earlier period,
//! fires first and the task moves it to the real deadline: a busy keep-alive connection is
//! woken about once per park delay (1 s by default) for its deadlines, not once per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::close::TaskWaker;
use tokio::time::Instant;

/// What one connection is doing, shared by its task, its requests and the registry.
#[derive(Debug)]
pub(super) struct Activity {
    /// Requests read and not yet fully answered.
    open: AtomicUsize,
    /// When `open` last dropped to zero (or the connection opened), in nanoseconds since the
    /// registry's epoch. Meaningful only while `open` is zero.
    idle_since: AtomicU64,
    /// Set by the registry to ask the connection to close because the server is full.
    evict: AtomicBool,
    /// Set by the connection task once it is closing, so it is not chosen for eviction again.
    closing: AtomicBool,
    /// The connection task's waker: woken when `evict` is set, when the server drains, and when
    /// `open` drops to zero unless the task's timer already covers the new idle period (see
    /// [`OpenRequest`]'s drop).
    waker: TaskWaker,
    /// When the connection task's timer fires, in nanoseconds since the registry's epoch;
    /// `u64::MAX` when no timer is armed.
    armed_at: AtomicU64,
    /// The shortest deadline an idle period can have (the idle timeout, or the park delay if
    /// sooner), in nanoseconds; `u64::MAX` when none applies.
    idle_delay: AtomicU64,
    /// Whether the last write (or flush, or shutdown) to the client returned `Pending`: hyper
    /// still holds bytes to send, so the connection must not be parked.
    write_blocked: AtomicBool,
    /// Whether bytes have been read from the client since the last bytes written to it: once a
    /// response is out, the first bytes read begin the next request, and a connection whose
    /// next head has begun must not be parked (taking hyper's connection apart would restart its
    /// header-read timeout: a client trickling a head would get more time).
    read_since_write: AtomicBool,
}

impl Activity {
    /// Whether no request is in progress.
    pub(super) fn is_idle(&self) -> bool {
        self.open.load(Ordering::Acquire) == 0
    }

    /// Whether the registry asked this connection to make room.
    pub(super) fn is_evicted(&self) -> bool {
        self.evict.load(Ordering::Acquire)
    }

    /// Marks the connection as closing: it is no longer a candidate for eviction.
    pub(super) fn set_closing(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Records whether the last write to the client was blocked.
    pub(super) fn set_write_blocked(&self, blocked: bool) {
        self.write_blocked.store(blocked, Ordering::Relaxed);
    }

    /// Records whether bytes have been read since the last bytes written.
    pub(super) fn set_read_since_write(&self, read: bool) {
        self.read_since_write.store(read, Ordering::Relaxed);
    }

    /// Whether the client has sent bytes since the last bytes written to it (its next request
    /// has begun).
    pub(super) fn has_read_since_write(&self) -> bool {
        self.read_since_write.load(Ordering::Relaxed)
    }

    /// Whether the last write to the client was blocked (hyper has output still to send).
    pub(super) fn is_write_blocked(&self) -> bool {
        self.write_blocked.load(Ordering::Relaxed)
    }

    /// The connection task's waker; the task registers on each poll, before it reads the
    /// state.
    pub(super) fn waker(&self) -> &TaskWaker {
        &self.waker
    }

    /// Records when the task's timer fires; `None`: no timer armed.
    pub(super) fn set_armed_at(&self, armed_at: Option<u64>) {
        self.armed_at
            .store(armed_at.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Records the shortest deadline an idle period of the connection can have; `None`: none
    /// applies.
    pub(super) fn set_idle_delay(&self, delay: Option<Duration>) {
        let nanos = delay.map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        });
        self.idle_delay.store(nanos, Ordering::SeqCst);
    }

    /// Whether the task must be woken for the idle period that begins at `now`: it is closing
    /// (its grace begins when idle), or its timer would not fire by the earliest deadline the
    /// new period can have. Otherwise the timer fires first and the task arms the real deadline
    /// then: one wake per idle delay at most, instead of one per request.
    fn needs_wake_on_idle(&self, now: u64) -> bool {
        self.closing.load(Ordering::SeqCst)
            || self.armed_at.load(Ordering::SeqCst)
                > now.saturating_add(self.idle_delay.load(Ordering::SeqCst))
    }
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    connections: HashMap<u64, Arc<Activity>>,
    per_peer: HashMap<IpAddr, usize>,
}

/// The live connections of one server.
#[derive(Debug)]
pub(super) struct Registry {
    table: Mutex<Table>,
    /// The zero of `Activity::idle_since`.
    epoch: Instant,
    /// Set while the accept loop waits for a slot with no idle connection to evict; then a
    /// connection turning idle notifies `became_idle`.
    accept_waiting: AtomicBool,
    became_idle: Notify,
    /// Set once when the server stops accepting: every connection drains.
    draining: AtomicBool,
}

impl Registry {
    pub(super) fn new() -> Self {
        Self {
            table: Mutex::new(Table::default()),
            epoch: Instant::now(),
            accept_waiting: AtomicBool::new(false),
            became_idle: Notify::new(),
            draining: AtomicBool::new(false),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table inconsistent (each update is one
        // map operation), so a poisoned lock is still usable.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> u64 {
        self.nanos(crate::time::now())
    }

    /// `at` in nanoseconds since the epoch (0 before it).
    pub(super) fn nanos(&self, at: Instant) -> u64 {
        let elapsed = at.saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Tells every connection to drain: sets the flag they read, then wakes each (a connection
    /// registered later reads the flag on its first poll).
    pub(super) fn drain_all(&self) {
        self.draining.store(true, Ordering::SeqCst);
        for activity in self.table().connections.values() {
            activity.waker.wake();
        }
    }

    /// Whether [`drain_all`](Self::drain_all) was called.
    pub(super) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// How many connections `peer` holds.
    pub(super) fn connections_of(&self, peer: IpAddr) -> usize {
        self.table()
            .per_peer
            .get(&peer.to_canonical())
            .copied()
            .unwrap_or(0)
    }

    /// Adds a connection from `peer`, idle from now, until the returned value is dropped.
    pub(super) fn register(self: &Arc<Self>, peer: IpAddr) -> Registration {
        let peer = peer.to_canonical();
        let activity = Arc::new(Activity {
            open: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now()),
            evict: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            waker: TaskWaker::default(),
            armed_at: AtomicU64::new(u64::MAX),
            idle_delay: AtomicU64::new(u64::MAX),
            write_blocked: AtomicBool::new(false),
            read_since_write: AtomicBool::new(false),
        });
        let mut table = self.table();
        let id = table.next_id;
        table.next_id += 1;
        table.connections.insert(id, activity.clone());
        *table.per_peer.entry(peer).or_default() += 1;
        Registration {
            registry: self.clone(),
            id,
            peer,
            activity,
        }
    }

    /// Asks the connection idle for the longest time to close, and returns it; `None` when no
    /// connection is idle (or every idle one is already closing).
    pub(super) fn evict_oldest_idle(&self) -> Option<Arc<Activity>> {
        let table = self.table();
        // Ties (a coarse clock) go to the older connection: ids grow with each connection.
        let oldest = table
            .connections
            .iter()
            .filter(|(_, a)| a.is_idle() && !a.closing.load(Ordering::Acquire) && !a.is_evicted())
            .min_by_key(|(id, a)| (a.idle_since.load(Ordering::Acquire), **id));
        match oldest {
            Some((_, activity)) => {
                activity.evict.store(true, Ordering::Release);
                activity.waker.wake();
                Some(activity.clone())
            }
            None => None,
        }
    }

    /// Declares whether the accept loop is waiting for a connection to turn idle. Set it before
    /// looking for one, so that a connection turning idle in between is not missed.
    pub(super) fn set_accept_waiting(&self, waiting: bool) {
        self.accept_waiting.store(waiting, Ordering::SeqCst);
    }

    /// Completes after a connection turned idle while the accept loop was waiting (possibly
    /// spuriously).
    pub(super) fn became_idle(&self) -> tokio::sync::futures::Notified<'_> {
        self.became_idle.notified()
    }

    /// Starts a request on `activity`'s connection.
    pub(super) fn open_request(self: &Arc<Self>, activity: &Arc<Activity>) -> OpenRequest {
        activity.open.fetch_add(1, Ordering::AcqRel);
        OpenRequest {
            registry: self.clone(),
            activity: activity.clone(),
        }
    }
}

/// One connection's entry in the [`Registry`], removed when dropped.
#[derive(Debug)]
pub(super) struct Registration {
    registry: Arc<Registry>,
    id: u64,
    peer: IpAddr,
    activity: Arc<Activity>,
}

impl Registration {
    pub(super) fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    pub(super) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// When the connection last turned idle (meaningful while it is idle).
    pub(super) fn idle_since(&self) -> Instant {
        let nanos = self.activity.idle_since.load(Ordering::Acquire);
        self.registry.epoch + std::time::Duration::from_nanos(nanos)
    }
}

/// Maps keep at least this many slots when shrunk: below it, shrinking saves nothing worth the
/// reallocation.
const MIN_CAPACITY: usize = 64;

/// Gives back most of a map's capacity once it holds under a quarter of it. A `HashMap` never
/// shrinks by itself, so after a flood of 10 000 connections the registry would keep room for
/// them for good; halving at a quarter keeps the cost amortised O(1) per removal.
fn shrink<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > MIN_CAPACITY && map.len() < map.capacity() / 4 {
        map.shrink_to((map.len() * 2).max(MIN_CAPACITY));
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = self.registry.table();
        table.connections.remove(&self.id);
        // A peer's entry goes with its last connection, so the map holds only current peers.
        if let Some(count) = table.per_peer.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                table.per_peer.remove(&self.peer);
            }
        }
        shrink(&mut table.connections);
        shrink(&mut table.per_peer);
    }
}

/// A request in progress on one connection: from the service call until its response body is
/// finished or dropped.
#[derive(Debug)]
pub(super) struct OpenRequest {
    registry: Arc<Registry>,
    activity: Arc<Activity>,
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        // A request starting between the decrement and the store is harmless: `idle_since` is
        // only read while `open` is zero, and is stored again when it next drops to zero.
        // `SeqCst` here and in `set_timer`: either this drop sees the task's timer cleared, or
        // the task, polled after clearing it, sees the connection idle.
        if self.activity.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            let now = self.registry.now();
            self.activity.idle_since.store(now, Ordering::Release);
            if self.activity.needs_wake_on_idle(now) {
                self.activity.waker.wake();
            }
            if self.registry.accept_waiting.load(Ordering::SeqCst) {
                self.registry.became_idle.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::*;

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    #[tokio::test(start_paused = true)]
    async fn evicts_the_connection_idle_the_longest() {
        let registry = Arc::new(Registry::new());
        let first = registry.register(PEER);
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = registry.register(PEER);
        tokio::time::advance(Duration::from_secs(1)).await;
        // The first connection served a request just now: the second has been idle longer.
        drop(registry.open_request(first.activity()));

        let evicted = registry.evict_oldest_idle().unwrap();
        assert!(Arc::ptr_eq(&evicted, second.activity()));
        assert!(second.activity().is_evicted());
        assert!(!first.activity().is_evicted());
        // Already asked once: the next eviction picks the other one.
        assert!(registry.evict_oldest_idle().is_some());
        assert!(first.activity().is_evicted());
        assert!(
            registry.evict_oldest_idle().is_none(),
            "nothing left to evict"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn busy_and_closing_connections_are_not_evicted() {
        let registry = Arc::new(Registry::new());
        let busy = registry.register(PEER);
        let _request = registry.open_request(busy.activity());
        let closing = registry.register(PEER);
        closing.activity().set_closing();
        assert!(!busy.activity().is_idle());
        assert!(registry.evict_oldest_idle().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn counts_connections_per_address_until_dropped() {
        let registry = Arc::new(Registry::new());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let a = registry.register(PEER);
        let b = registry.register(mapped);
        let _other = registry.register("10.0.0.2".parse().unwrap());
        assert_eq!(
            registry.connections_of(PEER),
            2,
            "IPv4-mapped is the same peer"
        );
        drop(a);
        assert_eq!(registry.connections_of(mapped), 1);
        drop(b);
        assert_eq!(registry.connections_of(PEER), 0);
        assert_eq!(registry.table().connections.len(), 1);
        assert_eq!(
            registry.table().per_peer.len(),
            1,
            "only the peer still connected"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_leaves_no_entries_and_little_capacity_behind() {
        let registry = Arc::new(Registry::new());
        // 10 000 connections from 2 500 addresses, then all closed.
        let flood: Vec<Registration> = (0..10_000u32)
            .map(|i| registry.register(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i % 2_500))))
            .collect();
        assert_eq!(registry.table().per_peer.len(), 2_500);
        drop(flood);
        let table = registry.table();
        assert!(table.connections.is_empty());
        assert!(
            table.per_peer.is_empty(),
            "a peer leaves with its last connection"
        );
        assert!(
            table.connections.capacity() <= 2 * MIN_CAPACITY,
            "{}",
            table.connections.capacity()
        );
        assert!(table.per_peer.capacity() <= 2 * MIN_CAPACITY);
    }

    /// A waker that counts its wakes.
    fn counting_waker() -> (std::task::Waker, Arc<std::sync::atomic::AtomicUsize>) {
        struct Count(Arc<std::sync::atomic::AtomicUsize>);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        (
            std::task::Waker::from(Arc::new(Count(count.clone()))),
            count,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_ending_wakes_the_task_only_when_its_timer_does_not_cover_the_idle_period() {
        let registry = Arc::new(Registry::new());
        let conn = registry.register(PEER);
        let activity = conn.activity();
        let (waker, wakes) = counting_waker();
        activity.waker().set(&waker);
        activity.set_idle_delay(Some(Duration::from_secs(1)));
        let end_request = || drop(registry.open_request(activity));

        // No timer armed: the task must arm one.
        end_request();
        assert_eq!(wakes.load(Ordering::SeqCst), 1);

        // Armed within the new period's first second: that timer fires first, no wake now.
        let soon = registry.nanos(Instant::now() + Duration::from_millis(500));
        activity.set_armed_at(Some(soon));
        end_request();
        assert_eq!(wakes.load(Ordering::SeqCst), 1);

        // Armed later than the period's earliest deadline: the task must move it sooner.
        let late = registry.nanos(Instant::now() + Duration::from_secs(30));
        activity.set_armed_at(Some(late));
        end_request();
        assert_eq!(wakes.load(Ordering::SeqCst), 2);

        // Closing: its grace starts when idle, whatever the timer.
        activity.set_armed_at(Some(soon));
        activity.set_closing();
        end_request();
        assert_eq!(wakes.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn draining_and_eviction_wake_the_connection() {
        let registry = Arc::new(Registry::new());
        let conn = registry.register(PEER);
        let (waker, wakes) = counting_waker();
        conn.activity().waker().set(&waker);
        assert!(registry.evict_oldest_idle().is_some());
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert!(!registry.is_draining());
        registry.drain_all();
        assert!(registry.is_draining());
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
    }
}
