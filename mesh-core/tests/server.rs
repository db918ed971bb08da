//! Integration tests of `mesh_core::server` over real loopback sockets.

use std::convert::Infallible;
use std::future::{Future, Ready, pending, poll_fn, ready};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Extensions, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::error::BoxError;
use mesh_core::server::{Acceptor, ConnectionInfo, Server, ServerConfig, ServerStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

/// A bound on every wait, so a broken server fails the test instead of hanging it.
const GUARD: Duration = Duration::from_secs(10);

async fn guarded<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

type Handler = tower::util::BoxCloneService<Request<Incoming>, Response<Full<Bytes>>, Infallible>;

/// Answers with the caller's address as `ConnectionInfo` reports it.
fn echo_peer() -> Handler {
    tower::util::BoxCloneService::new(tower::service_fn(|req: Request<Incoming>| async move {
        let info = req.extensions().get::<ConnectionInfo>().copied();
        let body = info.map(|i| i.peer_addr().to_string()).unwrap_or_default();
        Ok(Response::new(Full::from(body)))
    }))
}

/// A running server: its address, counters, the stop switch and the task serving.
struct Running {
    addr: SocketAddr,
    stats: ServerStats,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start<A: Acceptor>(config: ServerConfig, acceptor: A, handler: Handler) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener).acceptor(acceptor).config(config);
    let addr = server.local_addr().unwrap();
    let stats = server.stats();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve_with_shutdown(handler, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stats,
        stop,
        task,
    }
}

async fn start_plain(config: ServerConfig, handler: Handler) -> Running {
    start(config, mesh_core::server::PlainAcceptor::new(), handler).await
}

/// An HTTP/1.1 client connection: the sender, the client socket's address, the connection task.
async fn connect_h1(
    addr: SocketAddr,
) -> (http1::SendRequest<Empty<Bytes>>, SocketAddr, JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let (send, conn) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
    (
        send,
        local,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

/// An HTTP/2 (prior knowledge) client connection.
async fn connect_h2(
    addr: SocketAddr,
) -> (http2::SendRequest<Empty<Bytes>>, SocketAddr, JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    (
        send,
        local,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

fn get(addr: SocketAddr) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap()
}

async fn body_text(res: Response<Incoming>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
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

#[tokio::test]
async fn peer_address_reaches_the_handler_over_http1_and_http2() {
    let server = start_plain(ServerConfig::default(), echo_peer()).await;

    let (mut h1, h1_local, _c1) = connect_h1(server.addr).await;
    let res = h1.send_request(get(server.addr)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_text(res).await, h1_local.to_string());

    let (mut h2, h2_local, _c2) = connect_h2(server.addr).await;
    let res = h2.send_request(get(server.addr)).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(body_text(res).await, h2_local.to_string());
    assert_eq!(server.stats.accepted_connections(), 2);
}

#[tokio::test]
async fn local_address_is_the_accepting_socket() {
    let handler =
        tower::util::BoxCloneService::new(tower::service_fn(|req: Request<Incoming>| async move {
            let info = req.extensions().get::<ConnectionInfo>().copied();
            let body = info.map(|i| i.local_addr().to_string()).unwrap_or_default();
            Ok::<_, Infallible>(Response::new(Full::from(body)))
        }));
    let server = start_plain(ServerConfig::default(), handler).await;
    let (mut h1, _, _conn) = connect_h1(server.addr).await;
    let res = h1.send_request(get(server.addr)).await.unwrap();
    assert_eq!(body_text(res).await, server.addr.to_string());
}

/// A per-connection value, as mesh-tls's `PeerIdentity` will be.
#[derive(Clone, Debug, PartialEq)]
struct Marker(usize);

/// Numbers its connections and attaches the number to them.
#[derive(Clone, Default)]
struct MarkingAcceptor {
    seen: Arc<AtomicUsize>,
}

impl Acceptor for MarkingAcceptor {
    type Io = TcpStream;
    type Future = Ready<Result<(TcpStream, Extensions), BoxError>>;

    fn accept(&self, tcp: TcpStream, _info: &ConnectionInfo) -> Self::Future {
        let mut extensions = Extensions::new();
        extensions.insert(Marker(self.seen.fetch_add(1, Ordering::SeqCst)));
        ready(Ok((tcp, extensions)))
    }
}

#[tokio::test]
async fn acceptor_values_reach_every_request_of_their_connection() {
    let handler =
        tower::util::BoxCloneService::new(tower::service_fn(|req: Request<Incoming>| async move {
            let marker = req.extensions().get::<Marker>().cloned();
            let has_info = req.extensions().get::<ConnectionInfo>().is_some();
            let body = format!("{marker:?} {has_info}");
            Ok::<_, Infallible>(Response::new(Full::from(body)))
        }));
    let server = start(ServerConfig::default(), MarkingAcceptor::default(), handler).await;

    let (mut first, _, _c1) = connect_h1(server.addr).await;
    for _ in 0..2 {
        let res = first.send_request(get(server.addr)).await.unwrap();
        assert_eq!(body_text(res).await, "Some(Marker(0)) true");
    }
    let (mut second, _, _c2) = connect_h2(server.addr).await;
    let res = second.send_request(get(server.addr)).await.unwrap();
    assert_eq!(body_text(res).await, "Some(Marker(1)) true");
}

#[tokio::test]
async fn without_connection_extensions_requests_carry_none_of_the_connection_values() {
    let handler =
        tower::util::BoxCloneService::new(tower::service_fn(|req: Request<Incoming>| async move {
            let ext = req.extensions();
            let body = format!(
                "{} {} {}",
                ext.get::<ConnectionInfo>().is_some(),
                ext.get::<mesh_core::server::CloseHandle>().is_some(),
                ext.get::<Marker>().is_some(),
            );
            Ok::<_, Infallible>(Response::new(Full::from(body)))
        }));
    for (attach, expected) in [(true, "true true true"), (false, "false false false")] {
        let config = ServerConfig::default().connection_extensions(attach);
        assert_eq!(config.get_connection_extensions(), attach);
        let server = start(config, MarkingAcceptor::default(), handler.clone()).await;
        let (mut h1, _, _c1) = connect_h1(server.addr).await;
        for _ in 0..2 {
            let res = h1.send_request(get(server.addr)).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(body_text(res).await, expected, "HTTP/1.1, attach {attach}");
        }
        let (mut h2, _, _c2) = connect_h2(server.addr).await;
        let res = h2.send_request(get(server.addr)).await.unwrap();
        assert_eq!(body_text(res).await, expected, "HTTP/2, attach {attach}");
        assert_eq!(server.stats.accepted_connections(), 2);
    }
    assert!(ServerConfig::default().get_connection_extensions());
}

/// Fails the first handshake, never finishes the second, accepts the rest.
#[derive(Clone, Default)]
struct FlakyAcceptor {
    seen: Arc<AtomicUsize>,
}

impl Acceptor for FlakyAcceptor {
    type Io = TcpStream;
    type Future = Pin<Box<dyn Future<Output = Result<(TcpStream, Extensions), BoxError>> + Send>>;

    fn accept(&self, tcp: TcpStream, _info: &ConnectionInfo) -> Self::Future {
        match self.seen.fetch_add(1, Ordering::SeqCst) {
            0 => Box::pin(ready(Err("bad client hello".into()))),
            1 => Box::pin(async move {
                let _held = tcp;
                pending().await
            }),
            _ => Box::pin(ready(Ok((tcp, Extensions::new())))),
        }
    }
}

#[tokio::test]
async fn failed_and_stalled_handshakes_do_not_stop_the_server() {
    let config = ServerConfig::default().handshake_timeout(Duration::from_millis(100));
    let server = start(config, FlakyAcceptor::default(), echo_peer()).await;

    // One at a time, so the acceptor sees them in this order.
    let mut failing = TcpStream::connect(server.addr).await.unwrap();
    wait_closed(&mut failing).await;
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    wait_closed(&mut stalled).await;

    let (mut ok, local, _conn) = connect_h1(server.addr).await;
    let res = ok.send_request(get(server.addr)).await.unwrap();
    assert_eq!(body_text(res).await, local.to_string());
    assert_eq!(server.stats.handshake_failures(), 1);
    assert_eq!(server.stats.handshake_timeouts(), 1);
    assert_eq!(server.stats.accepted_connections(), 3);
}

#[tokio::test]
async fn header_read_timeout_closes_slow_and_silent_clients() {
    let config = ServerConfig::default().header_read_timeout(Some(Duration::from_millis(200)));
    let server = start_plain(config, echo_peer()).await;

    // A partial request line (HTTP/1.1 chosen: the connection task's header-read deadline),
    // nothing at all, and part of the HTTP/2 preface (both still waiting on version detection).
    for prefix in [&b"GET / HT"[..], b"", b"PRI * HTTP/2.0\r\n"] {
        let mut slow = TcpStream::connect(server.addr).await.unwrap();
        slow.write_all(prefix).await.unwrap();
        wait_closed(&mut slow).await;
    }
    assert_eq!(server.stats.accepted_connections(), 3);

    // A prompt client is still served.
    let (mut h1, local, _conn) = connect_h1(server.addr).await;
    let res = h1.send_request(get(server.addr)).await.unwrap();
    assert_eq!(body_text(res).await, local.to_string());
}

#[tokio::test]
async fn connection_limit_holds_new_connections_while_every_connection_is_busy() {
    let (calls_tx, mut calls) = mpsc::unbounded_channel::<SocketAddr>();
    let release = Arc::new(Semaphore::new(0));
    let handler = tower::util::BoxCloneService::new(tower::service_fn({
        let release = release.clone();
        move |req: Request<Incoming>| {
            let calls_tx = calls_tx.clone();
            let release = release.clone();
            async move {
                if let Some(info) = req.extensions().get::<ConnectionInfo>() {
                    let _ = calls_tx.send(info.peer_addr());
                }
                if req.uri().path() == "/block" {
                    let _permit = release.acquire().await;
                }
                Ok::<_, Infallible>(Response::new(Full::default()))
            }
        }
    }));
    let config = ServerConfig::default().max_connections(1);
    let server = start_plain(config, handler).await;

    // The only slot is busy with a request in progress.
    let (first, first_local, first_conn) = connect_h2(server.addr).await;
    let blocked = {
        let mut first = first.clone();
        let req = Request::get(format!("http://{}/block", server.addr))
            .body(Empty::new())
            .unwrap();
        tokio::spawn(async move { first.send_request(req).await })
    };
    assert_eq!(calls.recv().await, Some(first_local));

    // The second connection completes in the kernel backlog, but is not served yet.
    let (mut second, second_local, _c2) = connect_h1(server.addr).await;
    let addr = server.addr;
    let second_req = tokio::spawn(async move { second.send_request(get(addr)).await });

    // The first connection keeps being served meanwhile, and is the only one served.
    first.clone().send_request(get(server.addr)).await.unwrap();
    assert_eq!(calls.recv().await, Some(first_local));
    assert_eq!(server.stats.accepted_connections(), 1);
    assert_eq!(server.stats.active_connections(), 1);
    assert_eq!(
        server.stats.evicted_idle(),
        0,
        "a busy connection is not evicted"
    );
    assert!(!second_req.is_finished());

    // Once its request is answered the first connection is idle: it is closed to make room.
    release.add_permits(1);
    let res = guarded("the blocked request", blocked)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    guarded("the first connection to close", first_conn)
        .await
        .unwrap();
    let res = guarded("the second request", second_req)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.recv().await, Some(second_local));
    assert_eq!(server.stats.accepted_connections(), 2);
    assert_eq!(server.stats.evicted_idle(), 1);
}

/// A handler that reports each request and then waits for one permit of `release`.
fn blocking_handler(entered: mpsc::UnboundedSender<()>, release: Arc<Semaphore>) -> Handler {
    tower::util::BoxCloneService::new(tower::service_fn(move |_req: Request<Incoming>| {
        let entered = entered.clone();
        let release = release.clone();
        async move {
            let _ = entered.send(());
            let _permit = release.acquire().await;
            Ok::<_, Infallible>(Response::new(Full::from("finished")))
        }
    }))
}

/// Polls `fut` once, to let it react to what just happened.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

async fn graceful_shutdown_finishes_in_flight_request(http2: bool) {
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    // Polled here rather than spawned, so the test knows when the server has seen the signal.
    let mut serve = pin!(server.serve_with_shutdown(
        blocking_handler(entered_tx, release.clone()),
        async {
            let _ = stopped.await;
        },
    ));

    let request = tokio::spawn(async move {
        let res = if http2 {
            let (mut send, _, _conn) = connect_h2(addr).await;
            send.send_request(get(addr)).await
        } else {
            let (mut send, _, _conn) = connect_h1(addr).await;
            send.send_request(get(addr)).await
        };
        body_text(res.unwrap()).await
    });
    tokio::select! {
        _ = serve.as_mut() => panic!("server stopped early"),
        _ = guarded("the handler", entered.recv()) => {}
    }

    stop.send(()).unwrap();
    assert!(
        poll_once(&mut serve).await.is_pending(),
        "waits for the request"
    );
    // The listener is closed as soon as the signal is seen.
    let refused = TcpStream::connect(addr).await;
    assert_eq!(
        refused.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );

    release.add_permits(1);
    guarded("the server to drain", serve).await.unwrap();
    let body = guarded("the response", request).await.unwrap();
    assert_eq!(body, "finished");
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_http1_request() {
    graceful_shutdown_finishes_in_flight_request(false).await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_http2_request() {
    graceful_shutdown_finishes_in_flight_request(true).await;
}

#[tokio::test]
async fn graceful_shutdown_closes_idle_connections_at_once() {
    let server = start_plain(ServerConfig::default().drain_timeout(None), echo_peer()).await;
    let (mut h1, _, h1_conn) = connect_h1(server.addr).await;
    h1.send_request(get(server.addr)).await.unwrap();
    let (mut h2, _, h2_conn) = connect_h2(server.addr).await;
    h2.send_request(get(server.addr)).await.unwrap();

    // With no drain deadline, returning at all means both idle connections were closed.
    server.stop.send(()).unwrap();
    guarded("the server to stop", server.task)
        .await
        .unwrap()
        .unwrap();
    guarded("the HTTP/1.1 connection to close", h1_conn)
        .await
        .unwrap();
    guarded("the HTTP/2 connection to close", h2_conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn drain_deadline_closes_connections_still_busy() {
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let never = Arc::new(Semaphore::new(0));
    let config = ServerConfig::default().drain_timeout(Some(Duration::from_millis(100)));
    let server = start_plain(config, blocking_handler(entered_tx, never)).await;

    let addr = server.addr;
    let request = tokio::spawn(async move {
        let (mut send, _, _conn) = connect_h1(addr).await;
        send.send_request(get(addr)).await
    });
    guarded("the handler", entered.recv()).await;

    server.stop.send(()).unwrap();
    guarded("the server to stop", server.task)
        .await
        .unwrap()
        .unwrap();
    let outcome = guarded("the client to see the close", request)
        .await
        .unwrap();
    assert!(
        outcome.is_err(),
        "the busy connection was closed, not answered"
    );
}

/// Reads `mesh_core::time::now()` twice with at least a millisecond of real time between (spent
/// without yielding, as a long poll would): `"same"` when both readings are one.
fn two_readings() -> &'static str {
    let first = mesh_core::time::now();
    let spin_until = std::time::Instant::now() + Duration::from_millis(1);
    while std::time::Instant::now() < spin_until {
        std::hint::spin_loop();
    }
    if mesh_core::time::now() == first {
        "same"
    } else {
        "differ"
    }
}

#[tokio::test]
async fn the_layers_of_a_request_share_one_clock_reading_per_poll() {
    // Outside the server's connection task the clock is read at every call.
    assert_eq!(two_readings(), "differ");
    let handler = tower::util::BoxCloneService::new(tower::service_fn(
        |_req: Request<Incoming>| async move { Ok(Response::new(Full::from(two_readings()))) },
    ));
    let running = start_plain(ServerConfig::default(), handler).await;
    let (mut sender, _, _conn) = connect_h1(running.addr).await;
    let res = guarded("the response", sender.send_request(get(running.addr))).await;
    // The service's future runs in the connection task's poll, inside its clock scope.
    assert_eq!(body_text(res.unwrap()).await, "same");
    let _ = running.stop.send(());
}
