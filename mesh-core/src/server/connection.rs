//! One connection's task: handshake, HTTP serving, graceful shutdown.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Extensions, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::watch;
use tower::ServiceExt;
use tower::util::Oneshot;
use tower_service::Service;
use tracing::debug;

use super::acceptor::{Acceptor, ConnectionInfo};
use super::preface_deadline::PrefaceDeadline;
use super::stats::ServerStats;
use crate::error::BoxError;

/// What every connection task of one server shares.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) builder: auto::Builder<TokioExecutor>,
    pub(super) handshake_timeout: Duration,
    pub(super) header_read_timeout: Option<Duration>,
    pub(super) tcp_nodelay: bool,
    pub(super) stats: ServerStats,
}

/// Serves one accepted connection until it closes, or until it has drained after `drain` fires.
///
/// `_permit` is this connection's slot under `max_connections`; dropping it at the end of the task
/// lets the accept loop take the next connection.
pub(super) async fn serve_connection<A, S, B>(
    shared: Arc<Shared>,
    acceptor: A,
    service: S,
    tcp: TcpStream,
    info: ConnectionInfo,
    mut drain: watch::Receiver<()>,
    _permit: OwnedSemaphorePermit,
) where
    A: Acceptor,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let _active = shared.stats.connection_opened();
    if shared.tcp_nodelay
        && let Err(error) = tcp.set_nodelay(true)
    {
        debug!(peer = %info.peer_addr(), %error, "could not set TCP_NODELAY");
    }

    // The handshake, bounded in time and abandoned at shutdown: a connection that has not reached
    // HTTP yet has no request to finish.
    let handshake = tokio::time::timeout(shared.handshake_timeout, acceptor.accept(tcp, &info));
    let (io, extensions) = {
        let mut handshake = pin!(handshake);
        let mut shutdown = pin!(drain.changed());
        let outcome = poll_fn(|cx| {
            if shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            handshake.as_mut().poll(cx).map(Some)
        })
        .await;
        match outcome {
            Some(Ok(Ok(accepted))) => accepted,
            Some(Ok(Err(error))) => {
                shared.stats.record_handshake_failure();
                debug!(peer = %info.peer_addr(), %error, "handshake failed");
                return;
            }
            Some(Err(_elapsed)) => {
                shared.stats.record_handshake_timeout();
                debug!(peer = %info.peer_addr(), timeout = ?shared.handshake_timeout, "handshake timed out");
                return;
            }
            None => return,
        }
    };

    let io = TokioIo::new(PrefaceDeadline::new(io, shared.header_read_timeout));
    let service = ConnectionContext {
        service,
        info,
        extensions,
    };
    let mut conn = pin!(shared.builder.serve_connection_with_upgrades(io, service));

    // Serve until the connection ends; if shutdown comes first, ask the connection to finish its
    // in-flight requests (HTTP/2: GOAWAY; HTTP/1.1: close after the current response) and keep
    // driving it. Stopping it at the drain deadline is the accept loop's job (it aborts this task).
    let mut shutdown = pin!(drain.changed());
    let mut draining = false;
    let result = poll_fn(|cx| {
        if !draining && shutdown.as_mut().poll(cx).is_ready() {
            draining = true;
            conn.as_mut().graceful_shutdown();
        }
        conn.as_mut().poll(cx)
    })
    .await;
    if let Err(error) = result {
        debug!(peer = %info.peer_addr(), %error, "connection ended with an error");
    }
}

/// Adapts the user's tower service to hyper, adding the connection's values to each request.
#[derive(Clone, Debug)]
struct ConnectionContext<S> {
    service: S,
    info: ConnectionInfo,
    extensions: Extensions,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for ConnectionContext<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Oneshot<S, Request<Incoming>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let ext = req.extensions_mut();
        ext.insert(self.info);
        // After `ConnectionInfo`, so an acceptor's own value of that type wins (see `Acceptor`).
        if !self.extensions.is_empty() {
            ext.extend(self.extensions.clone());
        }
        // hyper calls through `&self` and never waits for readiness; a clone driven by `Oneshot`
        // waits for `poll_ready` before `call`, as tower requires.
        self.service.clone().oneshot(req)
    }
}
