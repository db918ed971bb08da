//! The pool's request slots, and one client clone's reservation of one.
//!
//! Readiness tells a balancer whether an endpoint can take a request now, so while every connection
//! is busy `poll_ready` is `Pending` and a balancer routes around the saturated endpoint. But an
//! endpoint that never becomes ready looks, to a balancer, exactly like one that is gone: after its
//! fail-fast time it answers "no endpoints". So the wait is bounded by the pool wait timeout: past it,
//! `poll_ready` reports ready and the request fails at once with [`PoolExhausted`] (the shape of
//! tower's load shedding: ready, then refused in `call`). The pool then remembers that it is
//! exhausted, so later requests fail at once instead of each waiting in vain again, until a slot is
//! taken by someone. A slot can only be taken after one was released, so the mark never outlives
//! the saturation that set it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Sleep;

use crate::error::{BoxError, PoolExhausted};

/// The slots of one pool: one semaphore permit per request in flight (so per busy connection).
pub(crate) struct Slots {
    permits: Arc<Semaphore>,
    /// A request waited the whole `wait` without getting a slot, and none has been taken since.
    exhausted: AtomicBool,
    wait: Duration,
}

impl Slots {
    pub(crate) fn new(max: usize, wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            exhausted: AtomicBool::new(false),
            wait,
        }
    }

    fn is_exhausted(&self) -> bool {
        self.exhausted.load(Ordering::Relaxed)
    }

    fn set_exhausted(&self, exhausted: bool) {
        // Read first: the common case (not exhausted, a slot taken) writes nothing.
        if self.is_exhausted() != exhausted {
            self.exhausted.store(exhausted, Ordering::Relaxed);
        }
    }
}

/// What [`Reservation::poll_acquire`] reserved, taken by `call`.
pub(crate) enum Reserved {
    /// A slot: the request may be sent.
    Slot(OwnedSemaphorePermit),
    /// No slot came free in time: the request fails with [`PoolExhausted`].
    Exhausted,
}

/// One clone's reserved slot, or its place in the queue for one.
#[derive(Default)]
pub(crate) struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    /// Boxed, but only while every slot is busy: the common case takes a permit without waiting.
    waiting: Option<Waiting>,
    /// `poll_acquire` gave up waiting: `call` answers [`PoolExhausted`].
    gave_up: bool,
}

struct Waiting {
    acquire: AcquireFuture,
    deadline: Pin<Box<Sleep>>,
}

/// `Sync` so that the client is `Sync` too, as some frameworks ask of services.
type AcquireFuture =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send + Sync>>;

impl Reservation {
    /// Whether a slot is reserved (for `Debug`).
    pub(crate) fn has_slot(&self) -> bool {
        self.permit.is_some()
    }

    /// Ready once a slot is reserved, or once the wait for one is over (then `call` fails). A
    /// reservation that gave up tries again for a free slot on every poll, so a balancer polling
    /// before each use never fails a request while a slot is free.
    pub(crate) fn poll_acquire(
        &mut self,
        slots: &Slots,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), BoxError>> {
        if self.permit.is_some() {
            return Poll::Ready(Ok(()));
        }
        let waiting = match &mut self.waiting {
            Some(waiting) => waiting,
            None => match slots.permits.clone().try_acquire_owned() {
                Ok(permit) => return self.reserve(slots, permit),
                Err(TryAcquireError::NoPermits) if slots.is_exhausted() || slots.wait.is_zero() => {
                    return self.give_up(slots);
                }
                Err(TryAcquireError::NoPermits) => {
                    self.gave_up = false;
                    self.waiting.insert(Waiting {
                        acquire: Box::pin(slots.permits.clone().acquire_owned()),
                        deadline: Box::pin(tokio::time::sleep(slots.wait)),
                    })
                }
                Err(TryAcquireError::Closed) => return Poll::Ready(Err(pool_closed())),
            },
        };
        match waiting.acquire.as_mut().poll(cx) {
            Poll::Ready(Ok(permit)) => {
                self.waiting = None;
                return self.reserve(slots, permit);
            }
            Poll::Ready(Err(_closed)) => {
                self.waiting = None;
                return Poll::Ready(Err(pool_closed()));
            }
            Poll::Pending => {}
        }
        ready!(waiting.deadline.as_mut().poll(cx));
        self.waiting = None;
        self.give_up(slots)
    }

    fn reserve(
        &mut self,
        slots: &Slots,
        permit: OwnedSemaphorePermit,
    ) -> Poll<Result<(), BoxError>> {
        slots.set_exhausted(false);
        self.gave_up = false;
        self.permit = Some(permit);
        Poll::Ready(Ok(()))
    }

    fn give_up(&mut self, slots: &Slots) -> Poll<Result<(), BoxError>> {
        slots.set_exhausted(true);
        self.gave_up = true;
        Poll::Ready(Ok(()))
    }

    /// Takes what `poll_acquire` reserved; `None` when it has not returned `Ready(Ok)` since.
    pub(crate) fn take(&mut self) -> Option<Reserved> {
        if let Some(permit) = self.permit.take() {
            return Some(Reserved::Slot(permit));
        }
        std::mem::take(&mut self.gave_up).then_some(Reserved::Exhausted)
    }
}

/// The error of a request that found no slot in time.
pub(crate) fn exhausted() -> BoxError {
    PoolExhausted::new().into()
}

/// The pool's semaphore is never closed; this only avoids a panic should that change.
fn pool_closed() -> BoxError {
    "HTTP/1.1 connection pool closed".into()
}
