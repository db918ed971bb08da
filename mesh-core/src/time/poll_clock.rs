//! [`now`] and [`PollClock`]: one clock reading shared by everything one poll of a task does.
//! Public docs: [`PollClock`].

use std::cell::Cell;
use std::marker::PhantomData;

use tokio::time::Instant;

/// What [`now`] does on this thread.
#[derive(Clone, Copy, Debug)]
enum State {
    /// No scope: read the clock every time.
    Off,
    /// In a scope that has not read the clock yet.
    Unread,
    /// In a scope that read it.
    Read(Instant),
}

thread_local! {
    static STATE: Cell<State> = const { Cell::new(State::Off) };
}

/// The current time for a mesh layer: inside a [`PollClock`] scope, the scope's one reading of
/// tokio's clock (taken at the first call); outside, `tokio::time::Instant::now()`.
///
/// ```
/// use mesh_core::time::{PollClock, now};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let scope = PollClock::enter();
/// let first = now();
/// assert_eq!(now(), first); // the same reading for the rest of the scope
/// drop(scope);
/// assert!(now() >= first); // read afresh outside it
/// # }
/// ```
pub fn now() -> Instant {
    STATE.with(|state| match state.get() {
        State::Read(at) => at,
        State::Unread => {
            let at = Instant::now();
            state.set(State::Read(at));
            at
        }
        State::Off => Instant::now(),
    })
}

/// A scope in which [`now`] reads the clock once: open it at the start of a task's poll and let
/// it drop at the end. Scopes nest; leaving one restores the enclosing one as it was.
///
/// # Why one reading
///
/// A proxied request passes through several layers that each want the time: the request's
/// recorder (its start and its end), the timeout layer (the deadline), the retry budget (its
/// deposit), the balancer (readiness, the endpoint's latency sample), the circuit breaker (the
/// outcome's time), the connection pool (check-out and check-in), the server (when the
/// connection went idle). Read separately, that is a dozen reads of the clock per request, each a
/// call into the vDSO of some 20–40 ns, for readings that differ by microseconds.
///
/// Most of them happen in two polls of one task: the poll in which hyper parses the request and
/// calls the service (the request's start in every layer), and the poll in which the response
/// arrives (its end). Inside a [`PollClock`] scope, [`now`] reads tokio's clock at its first call
/// and returns that reading for the rest of the scope; outside any scope it is
/// `tokio::time::Instant::now()`. mesh-core's server opens a scope around each poll of a
/// connection's task and its client around each poll of an upstream connection's task, so the
/// layers of a request served there share one reading per poll. (Envoy's workers do the same
/// with a time cached once per turn of their event loop.) Code that may be polled from a task
/// with a scope or from one without [joins](PollClock::join) instead: the `towermesh` crate's
/// `Client` does, so a service embedding it under another server still reads the clock once per
/// poll.
///
/// # What a reading means
///
/// The time at which the task's current poll first asked for it: earlier than the true time by
/// however long the poll has run since, which for a proxy's poll is microseconds. A deadline
/// computed from it is that much earlier, a latency measured between two polls that much off.
/// Each scope reads the clock afresh, so the readings of successive polls never go backwards (a
/// nested scope's reading may be later than the enclosing one's, which applies again once the
/// nested scope ends; code comparing readings saturates, as with any clock). Under tokio's
/// paused test clock nothing changes, since paused time only moves between polls anyway.
///
/// Code that needs the true time inside a scope (a timeout checked in a loop that does not
/// yield) keeps calling `Instant::now()`.
///
/// The guard belongs to the thread that opened it (it is neither `Send` nor `Sync`), so it
/// cannot be held across an `.await` in a future that must be `Send`.
#[must_use = "the scope ends when the guard is dropped"]
#[derive(Debug)]
pub struct PollClock {
    /// What to restore when the scope ends; `None` for a guard that joined an enclosing scope.
    previous: Option<State>,
    _thread: PhantomData<*const ()>,
}

impl PollClock {
    /// Opens a scope on this thread (inside another scope, a nested one with its own reading).
    pub fn enter() -> Self {
        Self {
            previous: Some(STATE.with(|state| state.replace(State::Unread))),
            _thread: PhantomData,
        }
    }

    /// Joins the scope open on this thread, or opens one if there is none.
    ///
    /// For code that may or may not run inside a task that opened a scope: a client's response
    /// future polled by mesh-core's server (which opens one per poll of a connection) shares the
    /// server's reading and reads the clock no more, while the same future polled by a task that
    /// opened none (an axum or tonic handler) gets one reading for its poll instead of one per
    /// layer that asks. Dropping a guard that joined leaves the enclosing scope as it is.
    pub fn join() -> Self {
        let previous = STATE.with(|state| match state.get() {
            State::Off => {
                state.set(State::Unread);
                Some(State::Off)
            }
            State::Unread | State::Read(_) => None,
        });
        Self {
            previous,
            _thread: PhantomData,
        }
    }
}

impl Drop for PollClock {
    fn drop(&mut self) {
        if let Some(previous) = self.previous {
            STATE.with(|state| state.set(previous));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn outside_a_scope_every_call_reads_the_clock() {
        let before = now();
        tokio::time::advance(Duration::from_millis(5)).await;
        assert_eq!(now() - before, Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_scope_reads_once_and_keeps_the_reading() {
        let scope = PollClock::enter();
        let first = now();
        // The clock moves while the scope is open (as real time does during a long poll); the
        // scope's reading does not.
        tokio::time::advance(Duration::from_millis(7)).await;
        assert_eq!(now(), first);
        drop(scope);
        assert_eq!(now() - first, Duration::from_millis(7));
    }

    #[tokio::test(start_paused = true)]
    async fn scopes_nest_and_restore_the_enclosing_reading() {
        let outer = PollClock::enter();
        let outer_reading = now();
        tokio::time::advance(Duration::from_millis(3)).await;
        {
            let _inner = PollClock::enter();
            assert_eq!(now() - outer_reading, Duration::from_millis(3));
        }
        assert_eq!(now(), outer_reading);
        drop(outer);
        assert_eq!(now() - outer_reading, Duration::from_millis(3));
    }

    #[tokio::test(start_paused = true)]
    async fn joining_shares_the_enclosing_reading_and_opens_a_scope_only_outside_one() {
        let outer = PollClock::enter();
        let outer_reading = now();
        tokio::time::advance(Duration::from_millis(3)).await;
        {
            let _joined = PollClock::join();
            // The enclosing scope's reading, not a fresh one.
            assert_eq!(now(), outer_reading);
        }
        // Still in the enclosing scope, with its reading.
        assert_eq!(now(), outer_reading);
        drop(outer);

        // Outside any scope, joining opens one that reads once, and closing it restores "no scope".
        let joined = PollClock::join();
        let reading = now();
        tokio::time::advance(Duration::from_millis(4)).await;
        assert_eq!(now(), reading);
        drop(joined);
        assert_eq!(now() - reading, Duration::from_millis(4));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unread_scope_reads_at_its_first_call() {
        let scope = PollClock::enter();
        let start = Instant::now();
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(now() - start, Duration::from_millis(2));
        drop(scope);
    }
}
