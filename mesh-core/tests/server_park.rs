//! Integration tests of parking idle HTTP/1.1 connections (`ServerConfig::http1_park_after`), over
//! real loopback sockets on a paused clock: the runtime is single-threaded and only moves time
//! forward when every task waits, after loopback IO that is already readable has been handled.
//! `sleep` here moves the clock past a deadline; it never waits for a condition.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::server::{Server, ServerConfig, ServerStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use common::{answer_to_an_oversized_head, guarded};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

const PARK_AFTER: Duration = Duration::from_secs(1);
/// Long enough for any connection to park.
const PAST_PARK: Duration = Duration::from_secs(2);

/// Answers `<method> <path> <body>`; upgrades requests carrying `upgrade: echo` to a byte echo.
async fn echo(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.headers().get("upgrade").is_some_and(|v| v == "echo") {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(upgrade.await.expect("upgraded"));
            let mut buf = [0u8; 64];
            while let Ok(n @ 1..) = io.read(&mut buf).await {
                if io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let res = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Full::default())
            .unwrap();
        return Ok(res);
    }
    let head = format!("{} {} ", req.method(), req.uri().path());
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let body = body.unwrap_or_default();
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    Ok(Response::new(Full::from(out)))
}

struct Running {
    addr: SocketAddr,
    stats: ServerStats,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(config: ServerConfig) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener).config(config);
    let addr = server.local_addr().unwrap();
    let stats = server.stats();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve_with_shutdown(tower::service_fn(echo), async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stats,
        stop: Some(stop),
        task,
    }
}

/// Parking after 1 s, with the other timers off unless a test sets them.
fn parking() -> ServerConfig {
    ServerConfig::default()
        .header_read_timeout(None)
        .idle_timeout(None)
        .write_stall_timeout(None)
        .http2_keep_alive_interval(None)
        .http1_park_after(Some(PARK_AFTER))
}

type Client = http1::SendRequest<Full<Bytes>>;

async fn connect_h1(addr: SocketAddr) -> (Client, JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
    let conn = tokio::spawn(async move { drop(conn.with_upgrades().await) });
    (send, conn)
}

fn post(addr: SocketAddr, path: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}{path}"))
        .body(Full::from(body))
        .unwrap()
}

async fn text(send: &mut Client, req: Request<Full<Bytes>>) -> String {
    let res = guarded("a response", send.send_request(req)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// Reads one response with a `content-length` from a raw socket.
async fn read_response(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.parse::<usize>().unwrap());
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        let n = guarded("a response", tcp.read(&mut chunk)).await.unwrap();
        assert!(n > 0, "closed before a full response: {text:?}");
        got.extend_from_slice(&chunk[..n]);
    }
}

/// A raw connection that has had one request answered.
async fn answered_connection(server: &Running) -> TcpStream {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut tcp).await;
    tcp
}

/// A raw connection that has had one request answered and has been idle long enough to park.
async fn parked_connection(server: &Running) -> TcpStream {
    let tcp = answered_connection(server).await;
    sleep(PAST_PARK).await;
    assert_eq!(server.stats.http1_parked(), 1);
    tcp
}

async fn wait_closed(tcp: &mut TcpStream) {
    let mut sink = Vec::new();
    let _ = guarded("the server to close", tcp.read_to_end(&mut sink)).await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_parks_and_serves_its_next_request() {
    let server = start(parking()).await;
    let (mut send, _conn) = connect_h1(server.addr).await;
    assert_eq!(
        text(&mut send, post(server.addr, "/one", b"first")).await,
        "POST /one first"
    );
    assert_eq!(
        server.stats.http1_parked(),
        0,
        "busy connections do not park"
    );

    sleep(PAST_PARK).await;
    assert_eq!(server.stats.http1_parked(), 1);
    assert_eq!(
        text(&mut send, post(server.addr, "/two", b"second")).await,
        "POST /two second"
    );
    // Parked once more after the second request, and still the same connection.
    sleep(PAST_PARK).await;
    assert_eq!(
        text(&mut send, post(server.addr, "/3", b"third")).await,
        "POST /3 third"
    );
    assert_eq!(server.stats.http1_parked(), 2);
    assert_eq!(server.stats.accepted_connections(), 1);
    assert_eq!(server.stats.active_connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn requests_closer_together_than_the_park_delay_never_park() {
    let server = start(parking()).await;
    let (mut send, _conn) = connect_h1(server.addr).await;
    for i in 0..20 {
        sleep(PARK_AFTER / 2).await;
        assert_eq!(
            text(&mut send, post(server.addr, "/", b"x")).await,
            "POST / x",
            "request {i}"
        );
    }
    assert_eq!(server.stats.http1_parked(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_head_split_across_the_wake_up_is_answered() {
    let server = start(parking()).await;
    let mut tcp = parked_connection(&server).await;
    // The first bytes wake the connection; the rest of the head comes after a pause.
    tcp.write_all(b"POST /again HT").await.unwrap();
    sleep(PAST_PARK).await;
    tcp.write_all(b"TP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\nok")
        .await
        .unwrap();
    let answer = read_response(&mut tcp).await;
    assert!(answer.ends_with("POST /again ok"), "{answer:?}");
    assert_eq!(
        server.stats.http1_parked(),
        1,
        "not parked twice in one idle period"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_sent_at_the_park_deadline_is_answered() {
    let server = start(parking()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    // Each request lands at the very instant its idle period reaches the park deadline: the
    // server either parks and wakes on it, or reads it first and does not park. Both answer.
    for i in 0..10 {
        let start = Instant::now();
        let request = format!("POST /{i} HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let answer = read_response(&mut tcp).await;
        assert!(answer.ends_with(&format!("POST /{i} abc")), "{answer:?}");
        tokio::time::sleep_until(start + PARK_AFTER).await;
    }
    assert_eq!(server.stats.accepted_connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_upgrade_after_a_park_works() {
    let server = start(parking()).await;
    let (mut send, _conn) = connect_h1(server.addr).await;
    assert_eq!(
        text(&mut send, post(server.addr, "/", b"")).await,
        "POST / "
    );
    sleep(PAST_PARK).await;
    assert_eq!(server.stats.http1_parked(), 1);

    let req = Request::get(format!("http://{}/up", server.addr))
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .body(Full::default())
        .unwrap();
    let res = guarded("the 101", send.send_request(req)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut io = TokioIo::new(hyper::upgrade::on(res).await.unwrap());
    io.write_all(b"raw bytes").await.unwrap();
    let mut back = [0u8; 9];
    guarded("the echo", io.read_exact(&mut back)).await.unwrap();
    assert_eq!(&back, b"raw bytes");
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_closes_a_parked_connection_at_its_deadline() {
    let server = start(parking().idle_timeout(Some(Duration::from_secs(30)))).await;
    let mut tcp = answered_connection(&server).await;
    let idle_from = Instant::now();
    wait_closed(&mut tcp).await;
    assert_eq!(idle_from.elapsed(), Duration::from_secs(30));
    assert_eq!(server.stats.http1_parked(), 1);
    assert_eq!(server.stats.idle_closed(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_header_read_timeout_still_bounds_a_parked_connection() {
    let server = start(parking().header_read_timeout(Some(Duration::from_secs(5)))).await;
    let mut tcp = answered_connection(&server).await;
    let idle_from = Instant::now();
    wait_closed(&mut tcp).await;
    assert_eq!(idle_from.elapsed(), Duration::from_secs(5));
    assert_eq!(server.stats.http1_parked(), 1);
}

/// Without parking, the server's connection task keeps the HTTP/1.1 header-read timeout (hyper
/// is given none): counted from when the previous response was written out, it closes a
/// keep-alive connection idle that long, and one that sent only part of its next head; a request
/// in progress (its body still arriving) is not cut by it.
#[tokio::test(start_paused = true)]
async fn the_header_read_timeout_bounds_the_wait_for_each_head() {
    const HEAD: Duration = Duration::from_secs(5);
    let config = parking()
        .http1_park_after(None)
        .header_read_timeout(Some(HEAD));
    let server = start(config).await;

    // Idle after its response: closed when the timeout has passed since.
    let mut idle = answered_connection(&server).await;
    let idle_from = Instant::now();
    wait_closed(&mut idle).await;
    assert_eq!(idle_from.elapsed(), HEAD);

    // Part of the next head two seconds in: still closed five seconds after the response.
    let mut slow = answered_connection(&server).await;
    let idle_from = Instant::now();
    sleep(Duration::from_secs(2)).await;
    slow.write_all(b"GET / HT").await.unwrap();
    wait_closed(&mut slow).await;
    assert_eq!(idle_from.elapsed(), HEAD);

    // A request whose body takes longer than the timeout is answered.
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    busy.write_all(b"POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: 6\r\n\r\nabc")
        .await
        .unwrap();
    sleep(HEAD * 2).await;
    busy.write_all(b"def").await.unwrap();
    let response = read_response(&mut busy).await;
    assert!(response.ends_with("POST /up abcdef"), "{response}");
    assert_eq!(server.stats.http1_parked(), 0);
    assert_eq!(server.stats.accepted_connections(), 3);
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_parked_connections_at_once() {
    let mut server = start(parking()).await;
    let mut tcp = parked_connection(&server).await;

    let stopped_at = Instant::now();
    server.stop.take().unwrap().send(()).unwrap();
    guarded("the server to drain", &mut server.task)
        .await
        .unwrap()
        .unwrap();
    wait_closed(&mut tcp).await;
    assert_eq!(stopped_at.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_full_server_evicts_a_parked_connection() {
    let server = start(parking().max_connections(1)).await;
    let mut parked = TcpStream::connect(server.addr).await.unwrap();
    parked
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut parked).await;
    sleep(PAST_PARK).await;
    assert_eq!(server.stats.http1_parked(), 1);

    let (mut send, _conn) = connect_h1(server.addr).await;
    assert_eq!(
        text(&mut send, post(server.addr, "/new", b"")).await,
        "POST /new "
    );
    wait_closed(&mut parked).await;
    assert_eq!(server.stats.evicted_idle(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_oversized_head_after_a_park_is_answered_431() {
    let server = start(parking()).await;
    let tcp = parked_connection(&server).await;
    let answer = answer_to_an_oversized_head(tcp).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "answered: {answer:?}");
}

#[tokio::test(start_paused = true)]
async fn http2_connections_are_not_parked() {
    let server = start(ServerConfig::default().http1_park_after(Some(PARK_AFTER))).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    for path in ["/a", "/b"] {
        let req = Request::post(format!("http://{}{path}", server.addr))
            .body(Full::<Bytes>::from("h2"))
            .unwrap();
        let res = guarded("a response", send.send_request(req)).await.unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("POST {path} h2"));
        sleep(PAST_PARK).await;
    }
    assert_eq!(server.stats.http1_parked(), 0);
    assert_eq!(server.stats.accepted_connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn parking_can_be_turned_off() {
    let server = start(parking().http1_park_after(None)).await;
    let (mut send, _conn) = connect_h1(server.addr).await;
    assert_eq!(
        text(&mut send, post(server.addr, "/", b"a")).await,
        "POST / a"
    );
    sleep(PAST_PARK * 10).await;
    assert_eq!(
        text(&mut send, post(server.addr, "/", b"b")).await,
        "POST / b"
    );
    assert_eq!(server.stats.http1_parked(), 0);
}

#[tokio::test]
async fn a_park_delay_below_the_minimum_is_refused() {
    let config = ServerConfig::default().http1_park_after(Some(Duration::from_millis(1)));
    let error = config.validate().unwrap_err();
    assert_eq!(error.key(), "http1_park_after");
    assert!(ServerConfig::default().validate().is_ok());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = Server::new(listener)
        .config(config)
        .serve(tower::service_fn(echo))
        .await;
    assert_eq!(served.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test(start_paused = true)]
async fn a_head_begun_before_the_park_deadline_is_answered() {
    let server = start(parking()).await;
    let mut tcp = answered_connection(&server).await;
    // Part of the next head reaches hyper before the deadline: the next request has begun, so
    // the connection stays with hyper (the header-read deadline keeps running) and is not parked.
    sleep(PARK_AFTER / 2).await;
    tcp.write_all(b"POST /late HT").await.unwrap();
    sleep(PAST_PARK).await;
    tcp.write_all(b"TP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\nok")
        .await
        .unwrap();
    let answer = read_response(&mut tcp).await;
    assert!(answer.ends_with("POST /late ok"), "{answer:?}");
    assert_eq!(
        server.stats.http1_parked(),
        0,
        "a connection whose next head has begun is not parked"
    );
    assert_eq!(server.stats.accepted_connections(), 1);
}
