//! One HTTP/1.1 connection as the pool holds it: hyper's sender, the place its send future lives,
//! and the state it shares with the task that drives it.
//!
//! Two per-request costs are paid once per connection here instead:
//!
//! - **The send future.** hyper's `try_send_request` returns a future whose type cannot be named,
//!   so it has to live behind a trait object. The [`SendSlot`] is allocated when the connection is
//!   made and each request's send future is written into it in place: requests on a kept-alive
//!   connection allocate nothing for it.
//! - **The way back to the pool.** After a response head is handed out, the connection may take
//!   the next request only once the caller has read the body to its end (hyper then reports the
//!   sender ready). Nothing the pool owns is polled meanwhile, so something must wait for that:
//!   the task that already drives the connection does ([`Driven`]). The exchange *parks* the
//!   connection and its permit in the [`ConnShared`] made with the connection and wakes that task;
//!   the task polls the parked sender each time it runs, and once it is ready puts the connection
//!   back in the pool and releases the permit. No task is spawned and nothing is allocated per
//!   request.
//!
//! Invariants: a parked connection goes back to the pool only when hyper reports it ready (the
//! previous response ended cleanly); one that closes or fails while parked is dropped and its permit
//! released; when the connection task ends (connection closed, runtime shut down) whatever is
//! parked is dropped with it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker, ready};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use hyper::client::conn::http1::SendRequest;
use pin_project::{pin_project, pinned_drop};
use tokio::sync::OwnedSemaphorePermit;

use super::pool::{Conn, Http1Pool};

type SendOutput<B> = Result<Response<Incoming>, TrySendError<Request<B>>>;

/// hyper's HTTP/1.1 sender with its per-connection slot for the send future and the state shared
/// with the connection task.
pub(crate) struct Http1Sender<B> {
    pub(crate) send: SendRequest<B>,
    slot: Pin<Box<dyn SendSlot<B>>>,
    pub(super) shared: Arc<ConnShared<B>>,
}

impl<B> Http1Sender<B>
where
    B: http_body::Body + Send + 'static,
{
    /// A sender for a new connection whose task drives `shared` (see [`Driven`]). Allocates the
    /// send slot, once per connection.
    pub(crate) fn new(send: SendRequest<B>, shared: Arc<ConnShared<B>>) -> Self {
        Self {
            send,
            slot: Box::pin(Slot {
                start: SendRequest::<B>::try_send_request,
                sending: None,
            }),
            shared,
        }
    }
}

impl<B> Http1Sender<B> {
    /// Starts sending `request`; [`poll_send`](Self::poll_send) drives it. A send already in the
    /// slot is dropped (never the case: a connection carries one request at a time).
    pub(super) fn start_send(&mut self, request: Request<B>) {
        self.slot.as_mut().start(&mut self.send, request);
    }

    /// The response head of the request started last; `None` when none was started.
    pub(super) fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Option<SendOutput<B>>> {
        self.slot.as_mut().poll_send(cx)
    }
}

/// Where one request's send future lives, in place, for the life of the connection.
trait SendSlot<B>: Send {
    fn start(self: Pin<&mut Self>, sender: &mut SendRequest<B>, request: Request<B>);
    fn poll_send(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SendOutput<B>>>;
}

/// `F` is the type of hyper's send future, known only through `G`, the function that makes it.
#[pin_project]
struct Slot<G, F> {
    start: G,
    #[pin]
    sending: Option<F>,
}

impl<B, G, F> SendSlot<B> for Slot<G, F>
where
    G: Fn(&mut SendRequest<B>, Request<B>) -> F + Send,
    F: Future<Output = SendOutput<B>> + Send,
{
    fn start(self: Pin<&mut Self>, sender: &mut SendRequest<B>, request: Request<B>) {
        let mut this = self.project();
        this.sending.set(Some((this.start)(sender, request)));
    }

    fn poll_send(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SendOutput<B>>> {
        let mut this = self.project();
        let Some(sending) = this.sending.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let output = ready!(sending.poll(cx));
        this.sending.set(None);
        Poll::Ready(Some(output))
    }
}

/// What a connection shares with its task: the connection itself while it is on its way back to
/// the pool, and the task's waker.
pub(crate) struct ConnShared<B> {
    state: Mutex<SharedState<B>>,
}

struct SharedState<B> {
    parked: Option<Parked<B>>,
    /// The connection task, woken when a connection is parked.
    task: Option<Waker>,
    /// The connection task has ended: nothing parked would ever be returned.
    ended: bool,
}

/// A connection whose response body is being read, with the permit of its request.
pub(super) struct Parked<B> {
    pub(super) conn: Conn<B>,
    pub(super) permit: OwnedSemaphorePermit,
    pub(super) pool: Weak<Http1Pool<B>>,
}

impl<B> ConnShared<B> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SharedState {
                parked: None,
                task: None,
                ended: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SharedState<B>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Parks `parked` for the connection task to return; hands it back when that task has ended
    /// (the caller drops it).
    pub(super) fn park(&self, parked: Parked<B>) -> Result<(), Parked<B>> {
        let task = {
            let mut state = self.lock();
            if state.ended {
                return Err(parked);
            }
            state.parked = Some(parked);
            state.task.clone()
        };
        if let Some(task) = task {
            task.wake();
        }
        Ok(())
    }

    /// The parked connection and its permit, if hyper reports it can take a request now (a
    /// checkout taking it before its task has run).
    pub(super) fn take_if_ready(&self) -> Option<Parked<B>> {
        let mut state = self.lock();
        if !state
            .parked
            .as_ref()
            .is_some_and(|parked| super::pool::is_ready(&parked.conn))
        {
            return None;
        }
        state.parked.take()
    }

    /// Run by the connection task each time it is polled: remembers its waker, and returns a
    /// parked connection to its pool once ready (or drops it once closed).
    fn poll_return(self: &Arc<Self>, cx: &mut Context<'_>) {
        let outcome = {
            let mut state = self.lock();
            if !state.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                state.task = Some(cx.waker().clone());
            }
            let Some(parked) = state.parked.as_mut() else {
                return;
            };
            match parked.conn.sender.send.poll_ready(cx) {
                Poll::Pending => return,
                Poll::Ready(result) => (state.parked.take(), result.is_ok()),
            }
        };
        // Outside the lock: the pool takes its own.
        if let (Some(parked), ready) = outcome {
            finish_return(self, parked, ready);
        }
    }

    /// The connection task has ended: whatever is parked is dropped (outside the lock) and leaves
    /// the pool's list of returning connections.
    fn end(self: &Arc<Self>) {
        let parked = {
            let mut state = self.lock();
            state.ended = true;
            state.task = None;
            state.parked.take()
        };
        if let Some(parked) = parked {
            finish_return(self, parked, false);
        }
    }
}

/// Ends a return: a ready connection goes idle before its permit is released, so a request woken
/// by the permit finds it; a closed one is dropped with its permit.
fn finish_return<B>(shared: &Arc<ConnShared<B>>, parked: Parked<B>, ready: bool) {
    let Parked { conn, permit, pool } = parked;
    if let Some(pool) = pool.upgrade() {
        pool.forget_returning(shared);
        if ready {
            pool.checkin(conn);
        }
    }
    drop(permit);
}

/// The task of one HTTP/1.1 connection: hyper's connection future `F`, and the returns of the
/// connection to its pool (see the module docs).
#[pin_project(PinnedDrop)]
pub(crate) struct Driven<F, B> {
    #[pin]
    connection: F,
    shared: Arc<ConnShared<B>>,
}

impl<F, B> Driven<F, B> {
    pub(crate) fn new(connection: F, shared: Arc<ConnShared<B>>) -> Self {
        Self { connection, shared }
    }
}

impl<F: Future, B> Future for Driven<F, B> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // The connection first: reading the end of a body is what makes the sender ready.
        let output = this.connection.poll(cx);
        this.shared.poll_return(cx);
        if output.is_ready() {
            this.shared.end();
        }
        output
    }
}

#[pinned_drop]
impl<F, B> PinnedDrop for Driven<F, B> {
    fn drop(self: Pin<&mut Self>) {
        self.shared.end();
    }
}

#[cfg(test)]
mod tests {
    use http::Request;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tower::{Service, ServiceExt};

    use crate::client::{ClientConfig, HttpClient, TcpConnector};
    use crate::{Body, Endpoint};

    /// A response whose body is dropped unread: hyper closes the connection, its task ends, and
    /// the connection leaves the pool's list of returning ones (nothing is kept for it).
    #[tokio::test]
    async fn a_connection_closed_while_returning_leaves_the_pool() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::from(listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0_u8; 1024];
            let _ = stream.read(&mut buffer).await.unwrap();
            // Two of the announced ten bytes: the body cannot end.
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab";
            stream.write_all(head).await.unwrap();
            // Holds the connection open until the client closes it.
            let _ = stream.read(&mut buffer).await;
        });
        let mut client =
            HttpClient::<Body>::new(endpoint, TcpConnector::new(), ClientConfig::default());
        let request = Request::get("/").body(Body::empty()).unwrap();
        let response = client.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(
            client.returning_connections(),
            1,
            "parked until the body ends"
        );
        drop(response);
        // The server sees the close once the client's connection task has ended.
        server.await.unwrap();
        while client.open_connections() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(client.returning_connections(), 0);
        assert_eq!(client.idle_connections(), 0);
    }
}
