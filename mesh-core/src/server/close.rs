//! [`CloseHandle`]: asking one connection to close gracefully, from outside the server.
//!
//! The server closes connections on its own for its own reasons (shutdown, idle timeout, eviction
//! at the connection limit). Some reasons are only known to other parts of the stack: `mesh-tls`
//! learns that a peer's certificate no longer verifies after a trust bundle changed, a handler may
//! decide a client misbehaves. A `CloseHandle` is how they say so without knowing how HTTP is
//! spoken on the connection: the server does the protocol part (HTTP/2 `GOAWAY`, HTTP/1.1 close
//! after the response in progress).

use std::fmt;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Asks the [`Server`](super::Server) to close one connection gracefully: requests in progress
/// finish, no new ones are taken (HTTP/2: `GOAWAY`; HTTP/1.1: the response in progress is the
/// last, and an idle connection closes at once).
///
/// Every connection has one, in the extensions of each of its requests, so a handler can close its
/// own connection. An [`Acceptor`](super::Acceptor) that wants to close connections later (as
/// `mesh-tls` does when trust bundles change) creates the handle itself with [`new`](Self::new),
/// keeps a clone and returns one in its extensions; the server then watches that one.
///
/// Once the requests in progress have finished, a peer that does not complete the HTTP/2 `GOAWAY`
/// exchange within one second is disconnected. Requests in progress are not cut short: a
/// long-lived stream keeps its connection open until it ends (or until the server shuts down).
/// Counted in [`ServerStats::close_requested`](super::ServerStats::close_requested).
///
/// The same handle retires a connection of mesh-core's
/// [`HttpClient`](crate::client::HttpClient): a connector gets it with
/// [`client::connection_close_handle`](crate::client::connection_close_handle) while it connects,
/// and once it is closed the client sends no new request on that connection (see there).
///
/// Cloning shares the handle. Closing is idempotent, and a handle closed before the server starts
/// serving its connection closes it as soon as serving starts.
///
/// ```
/// use http::Request;
/// use mesh_core::server::CloseHandle;
///
/// /// Serves this request, then closes its connection.
/// fn last_on_this_connection<B>(req: &Request<B>) {
///     if let Some(handle) = req.extensions().get::<CloseHandle>() {
///         handle.close();
///     }
/// }
/// # let mut req = Request::new(());
/// # let handle = CloseHandle::new();
/// # req.extensions_mut().insert(handle.clone());
/// # last_on_this_connection(&req);
/// # assert!(handle.is_close_requested());
/// ```
#[derive(Clone, Default)]
pub struct CloseHandle {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Set once by `close`.
    requested: AtomicBool,
    /// Set by the server when it stops serving the connection.
    finished: AtomicBool,
    /// Wakes whoever waits in `requested()`.
    notify: Notify,
    /// The serving connection's task, which checks `requested` on each poll instead of
    /// waiting in `requested()` (no lock per poll).
    task: TaskWaker,
}

impl CloseHandle {
    /// A handle not yet attached to a connection. Return it in an
    /// [`Acceptor`](super::Acceptor)'s extensions to attach it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the connection to close gracefully. Idempotent; does nothing once the connection has
    /// ended.
    pub fn close(&self) {
        if !self.inner.requested.swap(true, Ordering::AcqRel) {
            self.inner.notify.notify_waiters();
            self.inner.task.wake();
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_close_requested(&self) -> bool {
        self.inner.requested.load(Ordering::Acquire)
    }

    /// Completes once [`close`](Self::close) has been called (at once if it already was). A
    /// long-running handler can watch it to end a stream early.
    pub async fn requested(&self) {
        let mut notified = pin!(self.inner.notify.notified());
        // Registered before the check, so a `close` in between still wakes this waiter.
        notified.as_mut().enable();
        if self.is_close_requested() {
            return;
        }
        notified.await;
    }

    /// Whether no connection can be closed through this handle any more: the server has stopped
    /// serving the connection it was attached to, or every other clone is gone (so it never
    /// reached a server). Holders that keep handles in a list use it to drop stale entries.
    pub fn is_finished(&self) -> bool {
        self.inner.finished.load(Ordering::Acquire) || Arc::strong_count(&self.inner) == 1
    }

    /// The serving connection task's waker, woken by [`close`](Self::close). The task
    /// registers on each poll, before reading [`is_close_requested`](Self::is_close_requested).
    #[cfg(feature = "server")]
    pub(crate) fn task_waker(&self) -> &TaskWaker {
        &self.inner.task
    }

    /// Marks the connection as no longer served.
    #[cfg(any(feature = "server", feature = "client"))]
    pub(crate) fn finish(&self) {
        self.inner.finished.store(true, Ordering::Release);
    }
}

/// The waker of one task, stored by that task and woken by others (the connection task's, woken
/// by its close handle, its requests and the server). Wakes do not take it: a task's waker stays
/// valid across polls, so the task stores it again only when it changes ([`Registered`]), and a
/// poll costs no atomic operation.
#[derive(Debug, Default)]
pub(crate) struct TaskWaker {
    slot: std::sync::Mutex<Option<std::task::Waker>>,
}

impl TaskWaker {
    /// Wakes the task, if it has stored a waker.
    pub(crate) fn wake(&self) {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(waker) = slot.as_ref() {
            waker.wake_by_ref();
        }
    }

    #[cfg(feature = "server")]
    pub(crate) fn set(&self, waker: &std::task::Waker) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker.clone());
    }
}

/// The task's side of a [`TaskWaker`]: what it stored last, so that it stores again only when
/// its waker changes.
#[derive(Debug, Default)]
#[cfg(feature = "server")]
pub(crate) struct Registered(Option<std::task::Waker>);

#[cfg(feature = "server")]
impl Registered {
    /// Stores `waker` in `slot` unless it is the one stored last. Call it on each poll, before
    /// reading what the wakers of `slot` report.
    pub(crate) fn register(&mut self, slot: &TaskWaker, waker: &std::task::Waker) {
        if !self.0.as_ref().is_some_and(|last| last.will_wake(waker)) {
            slot.set(waker);
            self.0 = Some(waker.clone());
        }
    }
}

impl fmt::Debug for CloseHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloseHandle")
            .field("close_requested", &self.is_close_requested())
            .field("finished", &self.inner.finished.load(Ordering::Acquire))
            .finish()
    }
}

/// Marks a connection's handle finished when its task ends, however it ends (including an abort at
/// the drain deadline).
#[cfg(any(feature = "server", feature = "client"))]
#[derive(Debug)]
pub(crate) struct FinishOnDrop(pub(crate) CloseHandle);

#[cfg(any(feature = "server", feature = "client"))]
impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

#[cfg(test)]
mod tests {
    use std::task::Poll;

    use tokio_test::{assert_pending, assert_ready, task};

    use super::*;

    #[test]
    fn requested_completes_on_close_and_after_it() {
        let handle = CloseHandle::new();
        let mut waiting = task::spawn(handle.requested());
        assert_pending!(waiting.poll());
        handle.close();
        assert!(waiting.is_woken());
        assert_ready!(waiting.poll());
        // Already closed: completes at once; closing again changes nothing.
        handle.close();
        let mut late = task::spawn(handle.requested());
        assert_eq!(late.poll(), Poll::Ready(()));
        assert!(handle.is_close_requested());
    }

    #[test]
    #[cfg(feature = "server")]
    fn finished_when_the_server_lets_go_or_no_one_else_holds_it() {
        let handle = CloseHandle::new();
        assert!(handle.is_finished(), "never handed to anyone");
        let held = handle.clone();
        assert!(!handle.is_finished());
        drop(FinishOnDrop(held.clone()));
        assert!(handle.is_finished(), "the server stopped serving");
        assert!(held.is_finished());
    }
}
