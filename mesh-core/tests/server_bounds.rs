//! Integration tests of the server's resource bounds against idle, greedy and stalled clients, over
//! real loopback sockets on a paused clock: the runtime is single-threaded and only moves time
//! forward when every task waits, after loopback IO that is already readable has been handled.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::error::BoxError;
use mesh_core::server::{Server, ServerConfig, ServerStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Sleep;

use common::{answer_to_an_oversized_head, guarded};

type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
type Handler = tower::util::BoxCloneService<Request<Incoming>, Response<BoxBody>, Infallible>;

fn boxed<B>(body: B) -> BoxBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Answers every request `200 ok`.
fn ok() -> Handler {
    handler(|_req| Response::new(boxed(http_body_util::Full::from("ok"))))
}

fn handler(respond: fn(Request<Incoming>) -> Response<BoxBody>) -> Handler {
    tower::util::BoxCloneService::new(tower::service_fn(move |req| async move {
        Ok::<_, Infallible>(respond(req))
    }))
}

struct Running {
    addr: SocketAddr,
    stats: ServerStats,
    _stop: oneshot::Sender<()>,
}

async fn start(config: ServerConfig, handler: Handler) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener).config(config);
    let addr = server.local_addr().unwrap();
    let stats = server.stats();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve_with_shutdown(handler, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stats,
        _stop: stop,
    }
}

/// The default configuration with the timers that are not under test turned off.
fn quiet() -> ServerConfig {
    ServerConfig::default()
        .header_read_timeout(None)
        .idle_timeout(None)
        .write_stall_timeout(None)
        .http2_keep_alive_interval(None)
}

async fn connect_h1(addr: SocketAddr) -> (http1::SendRequest<Empty<Bytes>>, JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
    (send, tokio::spawn(async move { drop(conn.await) }))
}

async fn connect_h2(addr: SocketAddr) -> (http2::SendRequest<Empty<Bytes>>, JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    (send, tokio::spawn(async move { drop(conn.await) }))
}

fn get(addr: SocketAddr) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap()
}

/// An HTTP/2 client that sends the connection preface and an empty SETTINGS frame, then nothing,
/// and never reads.
async fn preface_only(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // SETTINGS: length 0, type 4, no flags, stream 0.
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    tcp
}

/// Reads until the server closes the connection (end of stream or reset).
async fn wait_closed(tcp: &mut TcpStream) {
    let mut sink = Vec::new();
    let _ = guarded(
        "the server to close the connection",
        tcp.read_to_end(&mut sink),
    )
    .await;
}

async fn served(addr: SocketAddr) -> StatusCode {
    let (mut send, _conn) = guarded("a connection", connect_h1(addr)).await;
    let res = guarded("a response", send.send_request(get(addr))).await;
    res.unwrap().status()
}

#[tokio::test(start_paused = true)]
async fn idle_http2_connections_are_closed_after_the_idle_timeout() {
    let config = quiet().idle_timeout(Some(Duration::from_secs(30)));
    let server = start(config, ok()).await;

    // A client that only sent its preface and SETTINGS, and one that made a request.
    let mut silent = preface_only(server.addr).await;
    let (mut h2, h2_conn) = connect_h2(server.addr).await;
    let res = h2.send_request(get(server.addr)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    wait_closed(&mut silent).await;
    guarded("the idle HTTP/2 client to be closed", h2_conn)
        .await
        .unwrap();
    assert_eq!(server.stats.idle_closed(), 2);
    assert_eq!(server.stats.active_connections(), 0);
}

/// A body that yields one chunk when `sleep` ends, then ends.
struct Delayed {
    sleep: Pin<Box<Sleep>>,
    done: bool,
}

impl Body for Delayed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        std::task::ready!(self.sleep.as_mut().poll(cx));
        self.done = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"late")))))
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_response_keeps_its_connection_busy() {
    let config = quiet()
        .idle_timeout(Some(Duration::from_secs(30)))
        .write_stall_timeout(Some(Duration::from_secs(30)));
    // A long poll: the response body takes five minutes to produce.
    let server = start(
        config,
        handler(|_req| {
            Response::new(boxed(Delayed {
                sleep: Box::pin(tokio::time::sleep(Duration::from_secs(300))),
                done: false,
            }))
        }),
    )
    .await;
    for http2 in [false, true] {
        let res = if http2 {
            let (mut send, _conn) = connect_h2(server.addr).await;
            send.send_request(get(server.addr)).await.unwrap()
        } else {
            let (mut send, _conn) = connect_h1(server.addr).await;
            send.send_request(get(server.addr)).await.unwrap()
        };
        let body = guarded("the slow body", res.into_body().collect()).await;
        assert_eq!(body.unwrap().to_bytes(), "late", "http2: {http2}");
    }
    assert_eq!(server.stats.idle_closed(), 0);
    assert_eq!(server.stats.write_stalls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_server_closes_its_oldest_idle_connection_for_a_new_client() {
    let server = start(quiet().max_connections(2), ok()).await;

    // An HTTP/1.1 keep-alive connection idle after one request, then an HTTP/2 client that only
    // sent its preface: both slots are taken, neither connection will ever close by itself.
    let (mut h1, h1_conn) = connect_h1(server.addr).await;
    h1.send_request(get(server.addr)).await.unwrap();
    let mut silent = preface_only(server.addr).await;

    // A third client is served: the oldest idle connection (HTTP/1.1) made room.
    assert_eq!(served(server.addr).await, StatusCode::OK);
    guarded("the HTTP/1.1 connection to be evicted", h1_conn)
        .await
        .unwrap();
    assert_eq!(server.stats.evicted_idle(), 1);

    // And a fourth: now the preface-only client is the oldest idle one.
    assert_eq!(served(server.addr).await, StatusCode::OK);
    wait_closed(&mut silent).await;
    assert_eq!(server.stats.evicted_idle(), 2);
    assert_eq!(server.stats.accepted_connections(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_idle_http2_connections_does_not_lock_clients_out() {
    let server = start(
        ServerConfig::default()
            .max_connections(50)
            .max_connections_per_peer(1_000),
        ok(),
    )
    .await;
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(preface_only(server.addr).await);
    }
    // Every slot is held by the flood, yet a normal client is served at once.
    assert_eq!(served(server.addr).await, StatusCode::OK);
    assert!(server.stats.evicted_idle() >= 150);
    assert!(server.stats.active_connections() <= 50);

    // And with the default timers, what is left of the flood is closed for idleness.
    for tcp in &mut flood {
        wait_closed(tcp).await;
    }
    assert_eq!(server.stats.active_connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn connections_beyond_the_per_peer_cap_are_refused() {
    let server = start(quiet().max_connections_per_peer(2), ok()).await;
    let (mut first, first_conn) = connect_h1(server.addr).await;
    let (mut second, _c2) = connect_h2(server.addr).await;
    first.send_request(get(server.addr)).await.unwrap();
    second.send_request(get(server.addr)).await.unwrap();

    // The third connection from 127.0.0.1 is closed unserved.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    wait_closed(&mut third).await;
    assert_eq!(server.stats.per_peer_refused(), 1);
    assert_eq!(server.stats.accepted_connections(), 2);

    // Once one closes, the address may connect again.
    drop(first);
    guarded("the first connection to close", first_conn)
        .await
        .unwrap();
    let mut status = None;
    // The server may see the new connection before the old one's close: retry until served.
    for _ in 0..10 {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let Ok((mut send, conn)) = http1::handshake(TokioIo::new(tcp)).await else {
            continue;
        };
        tokio::spawn(conn);
        if let Ok(res) = send.send_request(get(server.addr)).await {
            status = Some(res.status());
            break;
        }
    }
    assert_eq!(status, Some(StatusCode::OK));
}

/// An endless response body of 64 KiB chunks; reports when it is dropped.
struct Endless {
    dropped: Arc<Notify>,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; 64 * 1024])))))
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        self.dropped.notify_one();
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_cut_and_the_body_dropped() {
    let dropped = Arc::new(Notify::new());
    let handler = tower::util::BoxCloneService::new(tower::service_fn({
        let dropped = dropped.clone();
        move |_req: Request<Incoming>| {
            let dropped = dropped.clone();
            async move { Ok::<_, Infallible>(Response::new(boxed(Endless { dropped }))) }
        }
    }));
    let config = quiet().write_stall_timeout(Some(Duration::from_secs(30)));
    let server = start(config, handler).await;

    // Asks for the response and never reads it.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    // The connection is cut, and the response body (in a proxy: the upstream connection) let go.
    guarded("the body to be dropped", dropped.notified()).await;
    assert_eq!(server.stats.write_stalls(), 1);
    wait_closed(&mut tcp).await;
    assert_eq!(server.stats.active_connections(), 0);
}

/// A GET with one `x-big` header of `size` bytes.
fn big_head(addr: SocketAddr, size: usize) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}/"))
        .header("x-big", "a".repeat(size))
        .body(Empty::new())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_oversized_http1_head_is_answered_431() {
    let server = start(quiet(), ok()).await;

    // 40 KiB fits the default 64 KiB bound.
    let (mut send, _conn) = connect_h1(server.addr).await;
    let res = send.send_request(big_head(server.addr, 40 * 1024)).await;
    assert_eq!(res.unwrap().status(), StatusCode::OK);

    // 300 KB does not.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let answer = answer_to_an_oversized_head(tcp).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "answered: {answer:?}");
}

#[tokio::test(start_paused = true)]
async fn http2_applies_the_same_head_bound() {
    let server = start(quiet(), ok()).await;
    let (mut send, _conn) = connect_h2(server.addr).await;

    // Within the bound (above hyper's own 16 KiB default).
    let res = send.send_request(big_head(server.addr, 40 * 1024)).await;
    assert_eq!(res.unwrap().status(), StatusCode::OK);

    // Beyond it: refused, with 431 on the stream or by resetting it.
    let res = send.send_request(big_head(server.addr, 300_000)).await;
    if let Ok(res) = res {
        assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    // Either way the server goes on serving.
    let (mut send, _conn) = connect_h2(server.addr).await;
    assert_eq!(
        send.send_request(get(server.addr)).await.unwrap().status(),
        StatusCode::OK
    );
}
