//! Closing one connection from outside the server through its `CloseHandle`: requests in progress
//! finish, then the connection closes (HTTP/2 `GOAWAY`, HTTP/1.1 close after the response).

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Extensions, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::error::BoxError;
use mesh_core::server::{Acceptor, CloseHandle, ConnectionInfo, Server, ServerStats};
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

/// Hands each request's `CloseHandle` to the test, then waits for one permit of `release`.
fn blocking_handler(
    entered: mpsc::UnboundedSender<Option<CloseHandle>>,
    release: Arc<Semaphore>,
) -> Handler {
    tower::util::BoxCloneService::new(tower::service_fn(move |req: Request<Incoming>| {
        let entered = entered.clone();
        let release = release.clone();
        async move {
            let _ = entered.send(req.extensions().get::<CloseHandle>().cloned());
            let _permit = release.acquire().await;
            Ok::<_, Infallible>(Response::new(Full::from("finished")))
        }
    }))
}

struct Running {
    addr: SocketAddr,
    stats: ServerStats,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start<A: Acceptor>(acceptor: A, handler: Handler) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener).acceptor(acceptor);
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

fn get(addr: SocketAddr) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap()
}

async fn in_flight_request_finishes_then_the_connection_closes(http2: bool) {
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let server = start(
        mesh_core::server::PlainAcceptor::new(),
        blocking_handler(entered_tx, release.clone()),
    )
    .await;
    let addr = server.addr;
    let tcp = TcpStream::connect(addr).await.unwrap();
    // The request in flight and the client connection's task, which ends when the server closes.
    let (request, conn) = if http2 {
        let (mut send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let request = tokio::spawn(async move { send.send_request(get(addr)).await });
        (request, tokio::spawn(async move { conn.await.unwrap() }))
    } else {
        let (mut send, conn) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
        let conn = tokio::spawn(conn);
        let request = tokio::spawn(async move { send.send_request(get(addr)).await });
        (request, tokio::spawn(async move { conn.await.unwrap() }))
    };

    let handle = guarded("the handler", entered.recv())
        .await
        .unwrap()
        .expect("every request carries its connection's CloseHandle");
    assert!(!handle.is_finished());
    handle.close();
    // Closing again is harmless.
    handle.close();
    release.add_permits(1);

    let response = guarded("the in-flight response", request)
        .await
        .unwrap()
        .expect("the request in progress is answered");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "finished");
    guarded("the client connection to end", conn)
        .await
        .unwrap()
        .expect("a graceful close, not an error");
    assert_eq!(server.stats.close_requested(), 1);

    let _ = server.stop.send(());
    guarded("the server to stop", server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(handle.is_finished());
}

#[tokio::test]
async fn close_handle_closes_an_http2_connection_after_its_request() {
    in_flight_request_finishes_then_the_connection_closes(true).await;
}

#[tokio::test]
async fn close_handle_closes_an_http1_connection_after_its_request() {
    in_flight_request_finishes_then_the_connection_closes(false).await;
}

/// Attaches the same handle to every connection, as an acceptor that closes connections later does.
#[derive(Clone)]
struct HandleAcceptor(CloseHandle);

impl Acceptor for HandleAcceptor {
    type Io = TcpStream;
    type Future = Ready<Result<(TcpStream, Extensions), BoxError>>;

    fn accept(&self, tcp: TcpStream, _info: &ConnectionInfo) -> Self::Future {
        let mut extensions = Extensions::new();
        extensions.insert(self.0.clone());
        ready(Ok((tcp, extensions)))
    }
}

#[tokio::test]
async fn an_acceptors_handle_closes_its_idle_connection() {
    let handle = CloseHandle::new();
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(1));
    let server = start(
        HandleAcceptor(handle.clone()),
        blocking_handler(entered_tx, release),
    )
    .await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let response = send.send_request(get(server.addr)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = entered.recv().await.unwrap().unwrap();
    assert!(
        !seen.is_close_requested(),
        "the request saw the acceptor's handle"
    );

    // The connection is idle: closing it ends it without waiting for anything.
    handle.close();
    assert!(seen.is_close_requested(), "the same handle");
    guarded("the client connection to end", conn)
        .await
        .unwrap()
        .expect("a graceful close");
    assert_eq!(server.stats.close_requested(), 1);

    let _ = server.stop.send(());
    guarded("the server to stop", server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(handle.is_finished());
}
