//! Integration tests of `mesh_core::client::HttpClient` against hyper servers on loopback sockets.
//!
//! Conditions are awaited through channels: the test server reports accepted connections and arriving
//! requests, and the test connector reports when the client drops a transport (its connection task
//! ended). No test sleeps to wait for something to happen.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::ChannelBody;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::client::{ClientConfig, HttpClient, Protocol, TcpConnector};
use mesh_core::error::{ConnectError, Timeout, UpstreamError};
use mesh_core::{Body, BoxError, Endpoint, is_caused_by};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_test::{assert_pending, assert_ready_ok};
use tower::{Service, ServiceExt};

// ---------------------------------------------------------------------------------------------------
// Test server
// ---------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum ServerKind {
    Http1,
    /// HTTP/1.1 that closes every connection after one response (`Connection: close`).
    Http1Close,
    Http2,
}

/// A hyper server that counts connections and lets tests hold requests.
///
/// Paths: `/wait` answers once the test adds a permit to `gate`; `/hang` never answers; `/stream`
/// answers with a body fed by the test through a channel handed out on `streams`; anything else
/// answers `hello` at once. Every request is reported on `arrivals` first.
struct TestServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    arrivals: mpsc::UnboundedReceiver<String>,
    gate: Arc<Semaphore>,
    streams: mpsc::UnboundedReceiver<mpsc::Sender<Bytes>>,
    close_all: Arc<Notify>,
}

#[derive(Clone)]
struct Handles {
    arrivals: mpsc::UnboundedSender<String>,
    gate: Arc<Semaphore>,
    streams: mpsc::UnboundedSender<mpsc::Sender<Bytes>>,
}

impl TestServer {
    async fn start(kind: ServerKind) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let close_all = Arc::new(Notify::new());
        let (arrivals_tx, arrivals) = mpsc::unbounded_channel();
        let (streams_tx, streams) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(0));
        let handles = Handles {
            arrivals: arrivals_tx,
            gate: gate.clone(),
            streams: streams_tx,
        };
        let (counter, close) = (accepted.clone(), close_all.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(kind, stream, handles.clone(), close.clone()));
            }
        });
        Self {
            addr,
            accepted,
            arrivals,
            gate,
            streams,
            close_all,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::new(self.addr)
    }

    async fn next_arrival(&mut self) -> String {
        self.arrivals.recv().await.expect("server stopped")
    }
}

async fn serve(kind: ServerKind, stream: TcpStream, handles: Handles, close: Arc<Notify>) {
    let io = TokioIo::new(stream);
    let service = service_fn(move |req| handle(req, handles.clone()));
    let closing = close.notified();
    match kind {
        ServerKind::Http1 | ServerKind::Http1Close => {
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(kind == ServerKind::Http1)
                .serve_connection(io, service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = closing => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        }
        ServerKind::Http2 => {
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = closing => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        }
    }
}

async fn handle(
    mut req: Request<Incoming>,
    handles: Handles,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let _ = handles.arrivals.send(path.clone());
    let body = match path.as_str() {
        "/upgrade" => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let _ = TokioIo::new(upgraded).write_all(b"upgraded").await;
                }
            });
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(http::header::CONNECTION, "upgrade".parse().unwrap());
            headers.insert(http::header::UPGRADE, "test".parse().unwrap());
            return Ok(response);
        }
        "/wait" => {
            if let Ok(permit) = handles.gate.acquire().await {
                permit.forget();
            }
            Body::from("done")
        }
        "/hang" => std::future::pending().await,
        "/stream" => {
            let (tx, rx) = mpsc::channel(1);
            let _ = handles.streams.send(tx);
            Body::new(ChannelBody(rx))
        }
        _ => Body::from("hello"),
    };
    Ok(Response::new(body))
}

// ---------------------------------------------------------------------------------------------------
// Test connectors
// ---------------------------------------------------------------------------------------------------

/// Connects over TCP and reports each transport the client drops (its connection task has ended).
#[derive(Clone)]
struct TrackingConnector {
    dropped: mpsc::UnboundedSender<()>,
}

impl TrackingConnector {
    fn new() -> (Self, mpsc::UnboundedReceiver<()>) {
        let (dropped, rx) = mpsc::unbounded_channel();
        (Self { dropped }, rx)
    }
}

impl Service<Endpoint> for TrackingConnector {
    type Response = TrackedStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TrackedStream>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, endpoint: Endpoint) -> Self::Future {
        let dropped = self.dropped.clone();
        let connect = TcpConnector::new().call(endpoint);
        Box::pin(async move {
            Ok(TrackedStream {
                stream: connect.await?,
                dropped,
            })
        })
    }
}

struct TrackedStream {
    stream: TcpStream,
    dropped: mpsc::UnboundedSender<()>,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        let _ = self.dropped.send(());
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A connector that never connects, counting how often it was asked to.
#[derive(Clone, Default)]
struct NeverConnector {
    calls: Arc<AtomicUsize>,
}

impl Service<Endpoint> for NeverConnector {
    type Response = TcpStream;
    type Error = io::Error;
    type Future = std::future::Pending<io::Result<TcpStream>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _endpoint: Endpoint) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::pending()
    }
}

/// Connects over TCP; `kill` makes every transport made so far read end-of-stream, as if the server
/// had closed it, and wakes its reader.
#[derive(Clone, Default)]
struct KillableConnector {
    streams: Arc<std::sync::Mutex<Vec<Arc<KillSwitch>>>>,
}

#[derive(Default)]
struct KillSwitch {
    killed: std::sync::atomic::AtomicBool,
    reader: std::sync::Mutex<Option<std::task::Waker>>,
}

impl KillableConnector {
    fn kill(&self) {
        for switch in self.streams.lock().unwrap().iter() {
            switch.killed.store(true, Ordering::SeqCst);
            if let Some(waker) = switch.reader.lock().unwrap().take() {
                waker.wake();
            }
        }
    }
}

impl Service<Endpoint> for KillableConnector {
    type Response = KillableStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<KillableStream>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, endpoint: Endpoint) -> Self::Future {
        let switch = Arc::new(KillSwitch::default());
        self.streams.lock().unwrap().push(switch.clone());
        let connect = TcpConnector::new().call(endpoint);
        Box::pin(async move {
            Ok(KillableStream {
                stream: connect.await?,
                switch,
            })
        })
    }
}

struct KillableStream {
    stream: TcpStream,
    switch: Arc<KillSwitch>,
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.switch.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        *self.switch.reader.lock().unwrap() = Some(cx.waker().clone());
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves HTTP/1.1 over in-memory pipes instead of sockets, so a test can run on a paused clock; counts
/// the connections it makes.
#[derive(Clone, Default)]
struct InMemoryConnector {
    made: Arc<AtomicUsize>,
}

impl Service<Endpoint> for InMemoryConnector {
    type Response = tokio::io::DuplexStream;
    type Error = io::Error;
    type Future = std::future::Ready<io::Result<tokio::io::DuplexStream>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _endpoint: Endpoint) -> Self::Future {
        self.made.fetch_add(1, Ordering::SeqCst);
        let (client, server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
            TokioIo::new(server),
            service_fn(|_req| async { Ok::<_, Infallible>(Response::new(Body::from("hello"))) }),
        ));
        std::future::ready(Ok(client))
    }
}

/// An HTTP/2 server written directly on `h2` that resets every stream: `/refuse` with
/// `REFUSED_STREAM` (the request was not processed), anything else with `INTERNAL_ERROR`.
async fn start_resetting_h2_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(stream).await else {
                    return;
                };
                while let Some(Ok((request, mut respond))) = conn.accept().await {
                    let reason = if request.uri().path() == "/refuse" {
                        h2::Reason::REFUSED_STREAM
                    } else {
                        h2::Reason::INTERNAL_ERROR
                    };
                    respond.send_reset(reason);
                }
            });
        }
    });
    addr
}

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// Sends `path` and reads the whole response body.
async fn fetch(client: &mut HttpClient, path: &str) -> Result<(StatusCode, Bytes), BoxError> {
    let response = client.ready().await?.call(get(path)).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

fn http1(max_connections: usize) -> ClientConfig {
    ClientConfig::default().max_connections(max_connections)
}

fn http2() -> ClientConfig {
    ClientConfig::default().protocol(Protocol::Http2)
}

/// Polls `poll_ready` once, without waiting.
fn poll_ready_once(client: &mut HttpClient) -> Poll<Result<(), BoxError>> {
    let mut task = tokio_test::task::spawn(());
    task.enter(|cx, _| client.poll_ready(cx))
}

// ---------------------------------------------------------------------------------------------------
// HTTP/1.1
// ---------------------------------------------------------------------------------------------------

#[test]
fn client_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<HttpClient>();
    check::<HttpClient<http_body_util::Full<Bytes>>>();
}

#[tokio::test]
async fn http1_sequential_requests_reuse_one_connection() {
    let server = TestServer::start(ServerKind::Http1).await;
    // One slot: each request waits until the previous connection is back in the pool, so any second
    // connection would mean the first one was not reused.
    let mut client = HttpClient::new(server.endpoint(), TcpConnector::new(), http1(1));
    for _ in 0..5 {
        let (status, body) = fetch(&mut client, "/").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "hello");
    }
    assert_eq!(server.accepted(), 1);
    assert_eq!(client.open_connections(), 1);
}

#[tokio::test]
async fn http1_back_to_back_requests_take_the_returning_connection() {
    let server = TestServer::start(ServerKind::Http1).await;
    // Many free slots: the next request is sent before the previous connection's return task has
    // run, and must take that connection (hyper already reports it ready) instead of opening another.
    let mut client = HttpClient::new(
        server.endpoint(),
        TcpConnector::new(),
        ClientConfig::default(),
    );
    for _ in 0..10 {
        let (status, _) = fetch(&mut client, "/").await.unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn http1_requests_beyond_max_connections_wait_for_readiness() {
    let mut server = TestServer::start(ServerKind::Http1).await;
    let client = HttpClient::new(server.endpoint(), TcpConnector::new(), http1(2));

    let (done_tx, mut done) = mpsc::unbounded_channel();
    for _ in 0..2 {
        let mut c = client.clone();
        let response = c.ready().await.unwrap().call(get("/wait"));
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            let response = response.await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let _ = done_tx.send(body);
        });
    }
    assert_eq!(server.next_arrival().await, "/wait");
    assert_eq!(server.next_arrival().await, "/wait");

    // Both slots are busy: a third request is not ready.
    let mut third = client.clone();
    let mut ready = tokio_test::task::spawn(third.ready());
    assert_pending!(ready.poll());

    // One answer and its body read: the slot comes back.
    server.gate.add_permits(1);
    assert_eq!(done.recv().await.unwrap(), "done");
    ready.await.unwrap();

    // The third request reuses the connection the finished one returned.
    let response = third.call(get("/")).await.unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "hello"
    );
    assert_eq!(server.accepted(), 2);

    server.gate.add_permits(1);
    assert_eq!(done.recv().await.unwrap(), "done");
    assert!(client.open_connections() <= 2);
}

#[tokio::test]
async fn http1_server_closing_idle_connection_is_not_an_error() {
    let server = TestServer::start(ServerKind::Http1).await;
    let (connector, mut dropped) = TrackingConnector::new();
    let mut client = HttpClient::new(server.endpoint(), connector, http1(1));

    fetch(&mut client, "/").await.unwrap();
    // The slot is free only after the connection went back to the pool.
    client.ready().await.unwrap();
    assert_eq!(client.idle_connections(), 1);

    // The server closes the idle connection; the client notices and ends that connection.
    server.close_all.notify_waiters();
    dropped.recv().await.unwrap();
    assert_eq!(client.open_connections(), 0);

    let response = client.call(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn http1_pooled_connection_closed_at_send_time_is_retried_on_a_new_one() {
    let server = TestServer::start(ServerKind::Http1).await;
    let connector = KillableConnector::default();
    let mut client = HttpClient::new(server.endpoint(), connector.clone(), http1(1));

    fetch(&mut client, "/").await.unwrap();
    client.ready().await.unwrap();
    assert_eq!(client.idle_connections(), 1);

    // The pooled connection still looks usable when the request is handed to it, and closes before
    // hyper writes it.
    connector.kill();
    let response = client.call(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn http1_server_closing_after_each_response_is_not_an_error() {
    let server = TestServer::start(ServerKind::Http1Close).await;
    let mut client = HttpClient::new(server.endpoint(), TcpConnector::new(), http1(1));
    for _ in 0..3 {
        let (status, body) = fetch(&mut client, "/").await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello"[..]));
    }
    assert_eq!(server.accepted(), 3);
}

#[tokio::test]
async fn http1_dropped_response_future_releases_slot_and_connection() {
    let mut server = TestServer::start(ServerKind::Http1).await;
    let (connector, mut dropped) = TrackingConnector::new();
    let mut client = HttpClient::new(server.endpoint(), connector, http1(1));

    client.ready().await.unwrap();
    let mut response = client.call(get("/hang"));
    tokio::select! {
        _ = &mut response => panic!("/hang answered"),
        path = server.next_arrival() => assert_eq!(path, "/hang"),
    }
    assert_pending!(poll_ready_once(&mut client));
    drop(response);

    // The slot is back at once; the cancelled connection is closed, not pooled.
    assert_ready_ok!(poll_ready_once(&mut client));
    dropped.recv().await.unwrap();
    assert_eq!(client.open_connections(), 0);
    assert_eq!(client.idle_connections(), 0);

    let response = client.call(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn http1_response_body_dropped_early_is_not_reused() {
    let mut server = TestServer::start(ServerKind::Http1).await;
    let (connector, mut dropped) = TrackingConnector::new();
    let mut client = HttpClient::new(server.endpoint(), connector, http1(1));

    let response = client
        .ready()
        .await
        .unwrap()
        .call(get("/stream"))
        .await
        .unwrap();
    let feed = server.streams.recv().await.unwrap();
    feed.send(Bytes::from_static(b"first")).await.unwrap();
    let mut body = response.into_body();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "first");
    drop(body);

    dropped.recv().await.unwrap();
    let (status, _) = fetch(&mut client, "/").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.accepted(), 2);
    assert_eq!(server.next_arrival().await, "/stream");
    assert_eq!(server.next_arrival().await, "/");
    drop(feed);
}

#[tokio::test]
async fn http1_connection_lost_mid_request_is_an_upstream_error_sent() {
    let mut server = TestServer::start(ServerKind::Http1).await;
    let connector = KillableConnector::default();
    let mut client = HttpClient::new(server.endpoint(), connector.clone(), http1(1));

    let mut response = client.ready().await.unwrap().call(get("/hang"));
    tokio::select! {
        _ = &mut response => panic!("/hang answered"),
        path = server.next_arrival() => assert_eq!(path, "/hang"),
    }
    connector.kill();
    let err = response.await.unwrap_err();
    let upstream = err
        .downcast_ref::<UpstreamError>()
        .expect("an UpstreamError");
    assert!(upstream.request_sent());
    assert_ready_ok!(poll_ready_once(&mut client));
}

#[tokio::test(start_paused = true)]
async fn http1_connections_idle_past_idle_timeout_are_not_reused() {
    let connector = InMemoryConnector::default();
    let made = connector.made.clone();
    let config = http1(1).idle_timeout(Duration::from_secs(10));
    let mut client = HttpClient::new(Endpoint::new(([10, 0, 0, 1], 80).into()), connector, config);

    // With one slot, readiness returns only once the connection is idle in the pool, where its idle
    // time starts.
    fetch(&mut client, "/").await.unwrap();
    client.ready().await.unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    fetch(&mut client, "/").await.unwrap();
    assert_eq!(made.load(Ordering::SeqCst), 1, "reused at the idle timeout");

    client.ready().await.unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    fetch(&mut client, "/").await.unwrap();
    assert_eq!(made.load(Ordering::SeqCst), 2, "replaced after it");
}

#[tokio::test]
async fn http1_upgrade_takes_the_connection_out_of_the_pool() {
    let server = TestServer::start(ServerKind::Http1).await;
    let mut client = HttpClient::new(server.endpoint(), TcpConnector::new(), http1(1));

    let request = Request::get("/upgrade")
        .header(http::header::CONNECTION, "upgrade")
        .header(http::header::UPGRADE, "test")
        .body(Body::empty())
        .unwrap();
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let upgraded = hyper::upgrade::on(response).await.unwrap();
    let mut tunnel = Vec::new();
    TokioIo::new(upgraded)
        .read_to_end(&mut tunnel)
        .await
        .unwrap();
    assert_eq!(tunnel, b"upgraded");

    // The slot is free again and the next request gets a connection of its own.
    assert_eq!(fetch(&mut client, "/").await.unwrap().1, "hello");
    assert_eq!(server.accepted(), 2);
}

// ---------------------------------------------------------------------------------------------------
// HTTP/2
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn http2_concurrent_requests_share_one_connection() {
    let mut server = TestServer::start(ServerKind::Http2).await;
    let client = HttpClient::new(server.endpoint(), TcpConnector::new(), http2());

    const N: usize = 20;
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let response = client.oneshot(get("/wait")).await.unwrap();
                assert_eq!(response.version(), http::Version::HTTP_2);
                response.into_body().collect().await.unwrap().to_bytes()
            })
        })
        .collect();
    // All requests are at the server at the same time before any is answered.
    for _ in 0..N {
        assert_eq!(server.next_arrival().await, "/wait");
    }
    server.gate.add_permits(N);
    for task in tasks {
        assert_eq!(task.await.unwrap(), "done");
    }
    assert_eq!(server.accepted(), 1);
    assert_eq!(client.open_connections(), 1);
}

#[tokio::test]
async fn http2_reconnects_after_server_closes_connection() {
    let server = TestServer::start(ServerKind::Http2).await;
    let (connector, mut dropped) = TrackingConnector::new();
    let mut client = HttpClient::new(server.endpoint(), connector, http2());

    assert_eq!(fetch(&mut client, "/").await.unwrap().1, "hello");
    server.close_all.notify_waiters();
    dropped.recv().await.unwrap();
    assert_eq!(client.open_connections(), 0);

    assert_eq!(fetch(&mut client, "/").await.unwrap().1, "hello");
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn http2_dropped_response_future_keeps_connection() {
    let mut server = TestServer::start(ServerKind::Http2).await;
    // Keep-alive PINGs on (their interval never elapses here): the connection works with the timer.
    let config = http2().http2_keep_alive_interval(Duration::from_secs(30));
    let mut client = HttpClient::new(server.endpoint(), TcpConnector::new(), config);

    let mut response = client.ready().await.unwrap().call(get("/hang"));
    tokio::select! {
        _ = &mut response => panic!("/hang answered"),
        path = server.next_arrival() => assert_eq!(path, "/hang"),
    }
    drop(response);

    assert_eq!(fetch(&mut client, "/").await.unwrap().1, "hello");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn http2_refused_stream_is_an_upstream_error_not_sent() {
    let addr = start_resetting_h2_server().await;
    let mut client = HttpClient::new(Endpoint::new(addr), TcpConnector::new(), http2());

    let err = fetch(&mut client, "/refuse").await.unwrap_err();
    let upstream = err
        .downcast_ref::<UpstreamError>()
        .expect("an UpstreamError");
    assert!(!upstream.request_sent(), "{err:?}");

    let err = fetch(&mut client, "/fail").await.unwrap_err();
    let upstream = err
        .downcast_ref::<UpstreamError>()
        .expect("an UpstreamError");
    assert!(upstream.request_sent(), "{err:?}");
}

// ---------------------------------------------------------------------------------------------------
// Connect failures
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);

    for config in [http1(1), http2()] {
        let mut client = HttpClient::new(Endpoint::new(addr), TcpConnector::new(), config);
        let err = fetch(&mut client, "/").await.unwrap_err();
        assert!(err.is::<ConnectError>(), "{err:?}");
        let io = mesh_core::error::find_cause::<io::Error>(&*err).expect("io cause");
        assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);
        assert!(!is_caused_by::<UpstreamError>(&*err));
        assert_eq!(client.open_connections(), 0);
        // The slot of the failed request is free again.
        assert_ready_ok!(poll_ready_once(&mut client));
    }
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_is_a_connect_error_caused_by_timeout() {
    let connector = NeverConnector::default();
    let timeout = Duration::from_millis(250);
    let config = http1(1).connect_timeout(timeout);
    let mut client = HttpClient::new(Endpoint::new(([10, 0, 0, 1], 80).into()), connector, config);

    let start = tokio::time::Instant::now();
    let err = fetch(&mut client, "/").await.unwrap_err();
    assert!(err.is::<ConnectError>(), "{err:?}");
    assert!(is_caused_by::<Timeout>(&*err), "{err:?}");
    assert_eq!(start.elapsed(), timeout);
}

#[tokio::test(start_paused = true)]
async fn http2_requests_waiting_on_one_connect_share_its_timeout() {
    let connector = NeverConnector::default();
    let calls = connector.calls.clone();
    let config = http2().connect_timeout(Duration::from_secs(1));
    let client = HttpClient::new(Endpoint::new(([10, 0, 0, 1], 80).into()), connector, config);

    let start = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..3)
        .map(|_| tokio::spawn(client.clone().oneshot(get("/"))))
        .collect();
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert!(err.is::<ConnectError>(), "{err:?}");
        assert!(is_caused_by::<Timeout>(&*err), "{err:?}");
    }
    // One attempt, one timeout: the waiters did not each try again in turn.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}
