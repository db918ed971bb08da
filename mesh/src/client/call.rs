//! [`Stacks`]: a client's assembled stack and its idle clones; [`Call`]: one request on a clone.
//!
//! A `tower` service is called on an instance polled ready for that call, and a shared client
//! has many calls at once, so each call needs an instance of its own. Cloning the whole stack per
//! call (what `tower::util::Oneshot` over a fresh clone does) costs a reference count up and down
//! again for every shared part of every layer (the tracer, the instruments, the timeout's and the
//! retry layer's settings, the balancer's endpoint set), plus the copying: callgrind counted about
//! 450 instructions and a dozen atomic operations per request in mesh-sidecar.
//!
//! A call's clone is as good as new once the call is made: the retry layer has moved the
//! instance polled ready (the balancer holding the reserved endpoint) into the call's future and
//! left a fresh clone of it behind, and no other layer keeps anything per call. So the clone goes
//! back to the client's idle clones when the call is made, and the next call takes it: a lock
//! to take it and one to give it back, instead of the reference counts (and no allocation while
//! no more than that many calls start at once: each clone is boxed once). At most
//! [`IDLE_STACKS`] are kept; a clone whose call never got that far (its readiness failed, or the
//! caller dropped the future first) is dropped, not kept.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use pin_project::pin_project;
use tower::Service;

/// How many idle clones of its stack a client keeps: 64, the calls that can start at once without
/// cloning the stack. Past that, a call clones it (and its clone is dropped when the call is made).
pub(super) const IDLE_STACKS: usize = 64;

/// The assembled stack, and its clones waiting for a call. The clones are boxed, each once: a
/// call takes and gives back a pointer rather than copying a stack (several hundred bytes).
pub(super) struct Stacks<S> {
    stack: S,
    idle: Mutex<Vec<Box<S>>>,
}

impl<S: Clone> Stacks<S> {
    pub(super) fn new(stack: S) -> Self {
        Self {
            stack,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle clone, or a new one.
    fn take(&self) -> Box<S> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        idle.unwrap_or_else(|| Box::new(self.stack.clone()))
    }

    /// Keeps `stack` for the next call, if there is room (dropped after the lock otherwise).
    fn give(&self, stack: Box<S>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_STACKS {
            idle.push(stack);
        } else {
            drop(idle);
            drop(stack);
        }
    }
}

/// One call on a clone of the stack: polls it ready, calls it and gives it back, then waits for
/// the response. What `Oneshot` does, with the clone taken from and returned to [`Stacks`].
#[pin_project(project = CallProj)]
pub(super) enum Call<S, Req>
where
    S: Service<Req>,
{
    /// Waiting for the clone to be ready.
    Ready {
        stacks: Arc<Stacks<S>>,
        stack: Option<Box<S>>,
        request: Option<Req>,
    },
    /// Called: the stack's future.
    Called(#[pin] S::Future),
    /// Finished (or failed readiness).
    Done,
}

impl<S, Req> Call<S, Req>
where
    S: Service<Req> + Clone,
{
    pub(super) fn new(stacks: &Arc<Stacks<S>>, request: Req) -> Self {
        Self::Ready {
            stack: Some(stacks.take()),
            stacks: Arc::clone(stacks),
            request: Some(request),
        }
    }
}

impl<S, Req> Future for Call<S, Req>
where
    S: Service<Req> + Clone,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                CallProj::Ready {
                    stacks,
                    stack,
                    request,
                } => {
                    let ready = match stack.as_mut() {
                        Some(stack) => stack.poll_ready(cx),
                        None => panic!("mesh::ResponseFuture polled after completion"),
                    };
                    match ready {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(error)) => {
                            self.set(Call::Done);
                            return Poll::Ready(Err(error));
                        }
                        Poll::Ready(Ok(())) => {}
                    }
                    let (Some(mut ready), Some(request)) = (stack.take(), request.take()) else {
                        panic!("mesh::ResponseFuture polled after completion");
                    };
                    let future = ready.call(request);
                    stacks.give(ready);
                    self.set(Call::Called(future));
                }
                CallProj::Called(future) => {
                    let output = std::task::ready!(future.poll(cx));
                    self.set(Call::Done);
                    return Poll::Ready(output);
                }
                CallProj::Done => panic!("mesh::ResponseFuture polled after completion"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::{Ready, ready};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A service that counts its clones and is ready on the second poll of each instance.
    #[derive(Debug)]
    struct Counted {
        clones: Arc<AtomicUsize>,
        polls: usize,
        ready_after: usize,
    }

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.clones.fetch_add(1, Ordering::Relaxed);
            Self {
                clones: Arc::clone(&self.clones),
                polls: 0,
                ready_after: self.ready_after,
            }
        }
    }

    impl Service<u32> for Counted {
        type Response = u32;
        type Error = &'static str;
        type Future = Ready<Result<u32, &'static str>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), &'static str>> {
            self.polls += 1;
            if self.polls > self.ready_after {
                Poll::Ready(Ok(()))
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }

        fn call(&mut self, req: u32) -> Self::Future {
            // A fresh instance for the next call, as the retry layer leaves one.
            self.polls = 0;
            ready(Ok(req * 2))
        }
    }

    fn stacks(ready_after: usize) -> (Arc<Stacks<Counted>>, Arc<AtomicUsize>) {
        let clones = Arc::new(AtomicUsize::new(0));
        let stack = Counted {
            clones: Arc::clone(&clones),
            polls: 0,
            ready_after,
        };
        (Arc::new(Stacks::new(stack)), clones)
    }

    #[tokio::test]
    async fn a_call_gives_its_clone_back_and_the_next_call_takes_it() {
        let (stacks, clones) = stacks(1);
        assert_eq!(Call::new(&stacks, 4).await, Ok(8));
        assert_eq!(clones.load(Ordering::Relaxed), 1);
        assert_eq!(Call::new(&stacks, 5).await, Ok(10));
        assert_eq!(
            clones.load(Ordering::Relaxed),
            1,
            "the idle clone was reused"
        );
        assert_eq!(stacks.idle.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn calls_at_once_take_a_clone_each_and_the_idle_ones_are_bounded() {
        let (stacks, clones) = stacks(0);
        let calls: Vec<_> = (0..IDLE_STACKS as u32 + 3)
            .map(|i| Call::new(&stacks, i))
            .collect();
        assert_eq!(clones.load(Ordering::Relaxed), IDLE_STACKS + 3);
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await, Ok(2 * i as u32));
        }
        assert_eq!(stacks.idle.lock().unwrap().len(), IDLE_STACKS);
    }

    #[tokio::test]
    async fn a_clone_dropped_before_its_call_is_not_kept() {
        let (stacks, _clones) = stacks(5);
        let mut call = Box::pin(Call::new(&stacks, 1));
        // One poll: not ready yet; then the caller gives up.
        let waker = std::task::Waker::noop();
        assert!(
            call.as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
        drop(call);
        assert_eq!(stacks.idle.lock().unwrap().len(), 0);
    }
}
