//! `HttpClient` at its limits: an HTTP/1.1 pool whose connections are all held by responses nobody
//! reads, and a request body that breaks while it is forwarded.
//!
//! The pool tests run on a paused clock over in-memory connections (a hyper server on the other end
//! of a `tokio::io::duplex`), so the pool wait is measured exactly and no socket is involved. The
//! body test forwards a real client's malformed chunked upload over loopback sockets, as a proxy
//! does.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::classify::{ErrorKind, GrpcCode};
use mesh_core::client::{ClientConfig, HttpClient, Protocol, TcpConnector};
use mesh_core::error::{
    BadRequest, ErrorResponseLayer, MESH_ERROR_HEADER, PoolExhausted, RequestBodyError,
    classify_failure, find_cause,
};
use mesh_core::{Body, BoxError, Endpoint};
use mesh_test::duplex::DuplexConnector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready};
use tower::{Service, ServiceBuilder, ServiceExt};

// ---------------------------------------------------------------------------------------------------
// Pool exhaustion
// ---------------------------------------------------------------------------------------------------

const WAIT: Duration = Duration::from_millis(500);

/// A client with two connections, waiting at most `WAIT` for one of them.
fn pool_of_two() -> HttpClient {
    let config = ClientConfig::default()
        .max_connections(2)
        .pool_wait_timeout(WAIT);
    let endpoint = Endpoint::new("127.0.0.1:9".parse().unwrap());
    HttpClient::new(endpoint, DuplexConnector, config)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// Takes one connection with a response whose body is never read.
async fn hold(client: &HttpClient) -> Response<Incoming> {
    let response = client.clone().oneshot(get("/hold")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response
}

async fn read_body(response: Response<Incoming>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test(start_paused = true)]
async fn http1_request_waits_for_a_connection_released_within_the_pool_wait() {
    let client = pool_of_two();
    let held = hold(&client).await;
    let _also_held = hold(&client).await;

    let mut third = tokio_test::task::spawn(client.clone().oneshot(get("/")));
    assert_pending!(third.poll());
    tokio::time::advance(WAIT - Duration::from_millis(1)).await;
    assert_pending!(third.poll());

    // The reader gives up on one response: its connection is closed and its slot goes to the
    // waiting request.
    drop(held);
    let response = third.await.unwrap();
    assert_eq!(read_body(response).await, "hello");
}

#[tokio::test(start_paused = true)]
async fn http1_pool_exhausted_for_the_pool_wait_fails_typed_then_recovers() {
    let client = pool_of_two();
    let held = hold(&client).await;
    let _also_held = hold(&client).await;
    let start = Instant::now();

    let mut first = tokio_test::task::spawn(client.clone().oneshot(get("/")));
    assert_pending!(first.poll());
    tokio::time::advance(WAIT / 2).await;
    let mut late = tokio_test::task::spawn(client.clone().oneshot(get("/")));
    assert_pending!(late.poll());
    assert_pending!(first.poll());

    // The first waiter's wait is over: a typed failure, not an endless wait.
    tokio::time::advance(WAIT / 2).await;
    let error = assert_ready!(first.poll()).unwrap_err();
    assert!(error.is::<PoolExhausted>(), "{error}");
    assert_eq!(classify_failure(&*error).cause(), "pool_exhausted");
    assert_eq!(
        classify_failure(&*error).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        classify_failure(&*error).grpc_status(),
        GrpcCode::UNAVAILABLE
    );
    assert!(!ErrorKind::of_dyn(&*error).is_endpoint_failure());
    assert_eq!(start.elapsed(), WAIT);

    // The pool is known to be exhausted: the next request is ready at once and fails at once.
    let mut next = client.clone();
    let mut ready_now = tokio_test::task::spawn(next.ready());
    assert_ready!(ready_now.poll()).unwrap();
    drop(ready_now);
    let error = next.call(get("/")).await.unwrap_err();
    assert!(error.is::<PoolExhausted>(), "{error}");
    assert_eq!(start.elapsed(), WAIT);

    // A request that was already waiting still gets a released connection within its own wait.
    assert_pending!(late.poll());
    drop(held);
    let response = late.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // That slot was taken, so the pool is no longer marked exhausted: a new request waits again.
    let mut after = tokio_test::task::spawn(client.clone().oneshot(get("/")));
    assert_pending!(after.poll());
    assert_eq!(read_body(response).await, "hello");
    let response = after.await.unwrap();
    assert_eq!(read_body(response).await, "hello");
}

#[tokio::test(start_paused = true)]
async fn http1_zero_pool_wait_fails_at_once_when_every_connection_is_busy() {
    let config = ClientConfig::default()
        .max_connections(1)
        .pool_wait_timeout(Duration::ZERO);
    let endpoint = Endpoint::new("127.0.0.1:9".parse().unwrap());
    let client = HttpClient::new(endpoint, DuplexConnector, config);
    let _held = hold(&client).await;
    let mut third = tokio_test::task::spawn(client.clone().oneshot(get("/")));
    let error = assert_ready!(third.poll()).unwrap_err();
    assert!(error.is::<PoolExhausted>(), "{error}");
}

// ---------------------------------------------------------------------------------------------------
// A request body that breaks while it is forwarded
// ---------------------------------------------------------------------------------------------------

/// An upstream that reads the whole request body before answering.
async fn start_upstream() -> Endpoint {
    start_upstream_speaking(false).await
}

/// [`start_upstream`], over HTTP/2 when `http2`.
async fn start_upstream_speaking(http2: bool) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    Ok::<_, hyper::Error>(Response::new(Body::from(format!("{}", body.len()))))
                });
                let io = TokioIo::new(stream);
                if http2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    Endpoint::new(addr)
}

/// A minimal proxy: each request, with its streaming body, goes to `upstream` through an
/// `HttpClient`; failures become responses through `ErrorResponseLayer`.
async fn start_proxy(upstream: Endpoint) -> std::net::SocketAddr {
    let client: HttpClient<Incoming> =
        HttpClient::new(upstream, TcpConnector::new(), ClientConfig::default());
    let edge = ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .service(client);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let edge = edge.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| edge.clone().oneshot(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Sends `request` as raw bytes and returns the response head.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a response head");
        received.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&received).to_lowercase()
}

#[tokio::test]
async fn http1_malformed_chunked_request_body_is_a_400_not_an_upstream_failure() {
    let proxy = start_proxy(start_upstream().await).await;

    // A well-formed chunked upload goes through.
    let head = raw_exchange(
        proxy,
        b"POST /upload HTTP/1.1\r\nhost: upstream\r\ntransfer-encoding: chunked\r\n\r\n\
          3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("http/1.1 200"), "{head}");

    // `zz` is not a chunk size: the proxy's read of the body fails after the request went
    // upstream, and the client is told its request was bad.
    let head = raw_exchange(
        proxy,
        b"POST /upload HTTP/1.1\r\nhost: upstream\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    )
    .await;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert!(
        head.contains(&format!("{MESH_ERROR_HEADER}: bad_request")),
        "{head}"
    );
}

/// Sends a body that fails half-way to an upstream that reads it all, over `protocol`; the error.
async fn send_failing_body(protocol: Protocol) -> BoxError {
    let upstream = start_upstream_speaking(protocol == Protocol::Http2).await;
    let config = ClientConfig::default().protocol(protocol);
    let client: HttpClient<Body> = HttpClient::new(upstream, TcpConnector::new(), config);
    let body = Body::new(FailingBody(Some(Bytes::from_static(b"partial"))));
    let request = Request::post("/upload").body(body).unwrap();
    client.oneshot(request).await.unwrap_err()
}

fn assert_caused_by_the_body(error: &BoxError) {
    assert!(error.is::<BadRequest>(), "{error}");
    let cause =
        find_cause::<RequestBodyError>(&**error).expect("the body's failure is in the chain");
    assert_eq!(
        std::error::Error::source(cause).unwrap().to_string(),
        "client went away"
    );
    assert_eq!(classify_failure(&**error).status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn http1_request_body_failure_is_a_bad_request_caused_by_the_body() {
    assert_caused_by_the_body(&send_failing_body(Protocol::Http1).await);
}

#[tokio::test]
async fn http2_request_body_failure_is_a_bad_request_caused_by_the_body() {
    assert_caused_by_the_body(&send_failing_body(Protocol::Http2).await);
}

/// Yields one chunk, then fails as a client's upload does when the client disconnects.
struct FailingBody(Option<Bytes>);

impl http_body::Body for FailingBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Poll::Ready(Some(match self.0.take() {
            Some(chunk) => Ok(Frame::data(chunk)),
            None => Err(io::Error::other("client went away")),
        }))
    }
}
