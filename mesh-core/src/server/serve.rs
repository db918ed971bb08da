//! [`Server`]: the accept loop, the connection limit and graceful shutdown.

use std::future::{Future, pending, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower_service::Service;
use tracing::{debug, error, warn};

use super::acceptor::{Acceptor, ConnectionInfo, PlainAcceptor};
use super::config::ServerConfig;
use super::connection::{Shared, serve_connection};
use super::protocol::Builders;
use super::registry::{Activity, Registry};
use super::stats::ServerStats;
use crate::error::BoxError;

/// First pause after a failed `accept(2)`; doubled on each consecutive failure up to
/// [`ACCEPT_BACKOFF_MAX`]. Failures such as EMFILE clear up when connections close, so the loop waits
/// for that instead of spinning.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// An HTTP/1.1 and HTTP/2 server for one listener, generic over the transport.
///
/// Build it from a bound [`TcpListener`], optionally swap the [`Acceptor`] (TLS) and the
/// [`ServerConfig`], then run [`serve`](Self::serve) or
/// [`serve_with_shutdown`](Self::serve_with_shutdown). See the [module docs](super) for an example.
///
/// Both HTTP versions are served on every connection: HTTP/2 when the client opens with the HTTP/2
/// preface (prior knowledge, or after ALPN negotiated `h2` in the acceptor), HTTP/1.1 otherwise,
/// including upgrades (`101 Switching Protocols`, `CONNECT`).
#[derive(Debug)]
pub struct Server<A = PlainAcceptor> {
    listener: TcpListener,
    acceptor: A,
    config: ServerConfig,
    stats: ServerStats,
}

impl Server<PlainAcceptor> {
    /// A server for `listener` over plain TCP, with the default [`ServerConfig`].
    pub fn new(listener: TcpListener) -> Self {
        Self {
            listener,
            acceptor: PlainAcceptor::new(),
            config: ServerConfig::default(),
            stats: ServerStats::default(),
        }
    }
}

impl<A: Acceptor> Server<A> {
    /// Serves connections through `acceptor` instead (TLS from `mesh-tls`, or a test acceptor).
    pub fn acceptor<A2: Acceptor>(self, acceptor: A2) -> Server<A2> {
        Server {
            listener: self.listener,
            acceptor,
            config: self.config,
            stats: self.stats,
        }
    }

    /// Replaces the configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// The address the listener is bound to; with port 0 this tells which port was picked.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The server's counters. Take them before serving; they stay live while it runs.
    pub fn stats(&self) -> ServerStats {
        self.stats.clone()
    }

    /// Serves `service` until the future is dropped. See
    /// [`serve_with_shutdown`](Self::serve_with_shutdown).
    pub async fn serve<S, B>(self, service: S) -> io::Result<()>
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.serve_with_shutdown(service, pending()).await
    }

    /// Serves `service` on every accepted connection until `shutdown` completes, then drains.
    ///
    /// Each connection runs in its own tokio task, with its own clone of `service`; every request
    /// gets a [`ConnectionInfo`] and the acceptor's per-connection values in its extensions.
    ///
    /// # Shutdown
    ///
    /// When `shutdown` completes the listener is closed at once (new connections are refused), every
    /// connection is told to finish (HTTP/2 `GOAWAY`; HTTP/1.1 closes after the response in
    /// progress, or at once when idle), and the returned future waits for in-flight requests to
    /// complete, at most [`ServerConfig::drain_timeout`]; then the remaining connections are closed
    /// and it returns `Ok(())`. Connections taken over by an HTTP upgrade are no longer the server's
    /// and are not waited for.
    ///
    /// Dropping the returned future instead closes every connection immediately.
    ///
    /// # Errors
    ///
    /// At start, when the configuration is invalid ([`ServerConfig::validate`]; the error's
    /// kind is [`InvalidInput`](io::ErrorKind::InvalidInput) and it wraps the
    /// [`ConfigError`](crate::ConfigError)), or when the listener's local address cannot be read. Failures of `accept(2)` (for
    /// instance running out of file descriptors) are logged and counted, and the server backs off
    /// briefly and continues; failures of single connections are logged at `debug`.
    pub async fn serve_with_shutdown<S, B, F>(self, service: S, shutdown: F) -> io::Result<()>
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
        F: Future<Output = ()>,
    {
        let Server {
            listener,
            acceptor,
            config,
            stats,
        } = self;
        config
            .validate()
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let listen_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            builders: http_builders(&config),
            http1_park_after: config.http1_park_after,
            handshake_timeout: config.handshake_timeout,
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            write_stall_timeout: config.write_stall_timeout,
            tcp_nodelay: config.tcp_nodelay,
            connection_extensions: config.connection_extensions,
            stats,
        });
        let slots = Arc::new(Semaphore::new(
            config.max_connections.clamp(1, Semaphore::MAX_PERMITS),
        ));
        let registry = Arc::new(Registry::new());
        let max_per_peer = config.max_connections_per_peer.max(1);
        // Owning the tasks lets the drain deadline (or dropping this future) close what is left.
        let mut connections = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        let mut backoff = ACCEPT_BACKOFF_MIN;

        loop {
            reap_finished(&mut connections);

            let accept = reaping(listener.accept(), &mut connections);
            let Some(accepted) = until_shutdown(&mut shutdown, accept).await else {
                break;
            };
            let (tcp, peer_addr) = match accepted {
                Ok(accepted) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    accepted
                }
                Err(error) if is_per_connection(&error) => {
                    // The client gave up before we got to it; the listener itself is fine.
                    shared.stats.record_accept_error();
                    debug!(%error, "accept failed for one connection");
                    continue;
                }
                Err(error) => {
                    shared.stats.record_accept_error();
                    warn!(%error, ?backoff, "accept failed; backing off");
                    let pause = tokio::time::sleep(backoff);
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    if until_shutdown(&mut shutdown, pause).await.is_none() {
                        break;
                    }
                    continue;
                }
            };
            if registry.connections_of(peer_addr.ip()) >= max_per_peer {
                shared.stats.record_per_peer_refused();
                debug!(peer = %peer_addr, "connection refused: too many from this address");
                continue; // dropping `tcp` closes it
            }
            // The connection waits here, accepted but not served, while the server is full; the
            // ones after it wait in the kernel's listen backlog (backpressure).
            let Some(permit) = until_shutdown(&mut shutdown, take_slot(&slots, &registry)).await
            else {
                break;
            };
            let local_addr = tcp.local_addr().unwrap_or(listen_addr);
            let info = ConnectionInfo::new(peer_addr, local_addr);
            let registration = registry.register(peer_addr.ip());
            connections.spawn(serve_connection(
                shared.clone(),
                acceptor.clone(),
                service.clone(),
                tcp,
                info,
                registration,
                permit,
            ));
        }

        drop(listener);
        debug!(
            connections = connections.len(),
            "shutting down: draining connections"
        );
        // Every connection task reads the flag on its next poll; each is woken for it.
        registry.drain_all();
        let drained = async {
            while let Some(result) = connections.join_next().await {
                log_task_end(result);
            }
        };
        match config.drain_timeout {
            None => drained.await,
            Some(deadline) => {
                if tokio::time::timeout(deadline, drained).await.is_err() {
                    warn!(
                        remaining = connections.len(),
                        ?deadline,
                        "drain deadline passed; closing remaining connections"
                    );
                    connections.shutdown().await;
                }
            }
        }
        Ok(())
    }
}

/// The smallest HTTP/1.1 read buffer hyper accepts (`max_buf_size` panics below it).
const MIN_REQUEST_HEAD_SIZE: usize = 8 * 1024;

/// The hyper connection builders for `config`: the head size, HTTP/2's timer and keep-alive.
///
/// HTTP/1.1 gets no timer and no header-read timeout from hyper: hyper would arm a timer (a boxed
/// sleep, registered and cancelled) each time it waits for a request head, once per request on
/// a keep-alive connection. The connection task applies the header-read timeout instead, from
/// when the connection turned idle, with the timer it keeps for the idle timeout and parking.
fn http_builders(config: &ServerConfig) -> Builders {
    let head_size = config.max_request_head_size.max(MIN_REQUEST_HEAD_SIZE);
    let mut http1 = http1::Builder::new();
    http1
        .header_read_timeout(None)
        // hyper answers 431 when a request head does not fit its read buffer.
        .max_buf_size(head_size);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(head_size).unwrap_or(u32::MAX));
    if let Some(interval) = config.http2_keep_alive_interval {
        http2
            .keep_alive_interval(interval)
            .keep_alive_timeout(config.http2_keep_alive_timeout);
    }
    Builders { http1, http2 }
}

/// A connection slot: a free one, else one freed by closing the connection idle the longest,
/// else the first one freed by a connection closing or turning idle (then evicted).
async fn take_slot(slots: &Arc<Semaphore>, registry: &Registry) -> OwnedSemaphorePermit {
    // The connection last asked to make room. It closes at once, unless a request raced its
    // eviction: then it closes once that request is answered, and the next connection to turn
    // idle is asked too, so a long request does not hold up the new client.
    let mut evicted: Option<Arc<Activity>> = None;
    let permit = loop {
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            break permit;
        }
        // Declared before looking, so a connection turning idle meanwhile still wakes us.
        registry.set_accept_waiting(true);
        if evicted.as_ref().is_none_or(|activity| !activity.is_idle())
            && let Some(activity) = registry.evict_oldest_idle()
        {
            evicted = Some(activity);
        }
        let mut became_idle = pin!(registry.became_idle());
        let mut permit = pin!(acquire(slots));
        let outcome = poll_fn(|cx| {
            if let Poll::Ready(permit) = permit.as_mut().poll(cx) {
                return Poll::Ready(Some(permit));
            }
            became_idle.as_mut().poll(cx).map(|()| None)
        })
        .await;
        if let Some(permit) = outcome {
            break permit;
        }
    };
    registry.set_accept_waiting(false);
    permit
}

/// Waits for a slot. The semaphore is never closed, so this never fails.
async fn acquire(slots: &Arc<Semaphore>) -> OwnedSemaphorePermit {
    match slots.clone().acquire_owned().await {
        Ok(permit) => permit,
        Err(_closed) => unreachable!("the connection semaphore is never closed"),
    }
}

/// Runs `work` unless `shutdown` completes first (then `None`). `shutdown` wins ties, so no
/// connection is accepted once shutdown has been signalled.
async fn until_shutdown<F: Future>(
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    work: F,
) -> Option<F::Output> {
    let mut work = pin!(work);
    poll_fn(|cx| {
        if shutdown.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
}

/// Accept errors that concern only the connection being accepted, not the listener.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Runs `accept` while collecting the connection tasks that finish meanwhile.
///
/// A finished task keeps its allocation, sized for the connection's whole future (hyper's
/// connection state and the server's wrappers), until its `JoinHandle` in the set is dropped.
/// Reaping only before each accept left every task of a flood allocated for as long as no new
/// connection came, which after a flood of thousands of connections is memory held for good by an
/// idle process.
async fn reaping<F: Future>(accept: F, connections: &mut JoinSet<()>) -> F::Output {
    let mut accept = pin!(accept);
    poll_fn(|cx| {
        // `Ready(None)` once the set is empty; `Pending` registers to be woken by the next task
        // that finishes.
        while let Poll::Ready(Some(result)) = connections.poll_join_next(cx) {
            log_task_end(result);
        }
        accept.as_mut().poll(cx)
    })
    .await
}

/// Collects finished connection tasks so the set only holds live ones.
fn reap_finished(connections: &mut JoinSet<()>) {
    while let Some(result) = connections.try_join_next() {
        log_task_end(result);
    }
}

fn log_task_end(result: Result<(), tokio::task::JoinError>) {
    if let Err(join_error) = result
        && join_error.is_panic()
    {
        error!("a connection task panicked");
    }
}

#[cfg(test)]
mod tests {
    use tokio_test::{assert_pending, task};

    use super::*;

    #[tokio::test]
    async fn tasks_that_end_while_waiting_for_a_connection_are_collected() {
        let mut connections = JoinSet::new();
        for _ in 0..3 {
            connections.spawn(async {});
        }
        // On this single-threaded runtime the three tasks run (and end) before the test resumes.
        tokio::task::yield_now().await;
        assert_eq!(connections.len(), 3);

        // No connection arrives, yet the ended tasks are collected.
        let mut accept = task::spawn(reaping(pending::<()>(), &mut connections));
        assert_pending!(accept.poll());
        drop(accept);
        assert!(connections.is_empty());
    }
}
