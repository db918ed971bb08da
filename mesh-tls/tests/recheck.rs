//! Live connections after a trust bundle change: with
//! `TlsAcceptor::recheck_connections_on_bundle_change`, a connection whose client chain no longer
//! verifies gets `GOAWAY` once its request in flight is answered; by default it keeps working.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::server::{CloseHandle, Server, ServerStats};
use mesh_test::TestMetrics;
use mesh_tls::rotation::{IdentityWatch, WorkloadIdentity};
use mesh_tls::test_ca::{TestCa, TestSvid};
use mesh_tls::{TlsAcceptor, TlsConnector, TrustBundleSet};
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// A bound on every wait, so a broken implementation fails the test instead of hanging it.
const GUARD: Duration = Duration::from_secs(10);

async fn guarded<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

const SERVER_ID: &str = "spiffe://prod.example/server";

/// Two CAs of one trust domain: the server starts trusting both roots and ends with only B's.
struct Pki {
    a: TestCa,
    b: TestCa,
    server: TestSvid,
}

impl Pki {
    fn new() -> Self {
        let a = TestCa::new("prod.example");
        let b = TestCa::new("prod.example");
        let server = b.issue("/server");
        Self { a, b, server }
    }

    fn bundles(&self, cas: &[&TestCa]) -> Arc<TrustBundleSet> {
        let roots: Vec<CertificateDer<'static>> = cas.iter().flat_map(|ca| ca.roots()).collect();
        let td = self.a.trust_domain().clone();
        Arc::new(TrustBundleSet::new().with(td, roots).unwrap())
    }

    fn identity(&self, cas: &[&TestCa]) -> WorkloadIdentity {
        WorkloadIdentity::new(self.server.svid(), self.bundles(cas))
    }

    /// A client with a leaf of `ca`, trusting the server's root.
    fn client(&self, ca: &TestCa, path: &str) -> TlsConnector {
        TlsConnector::new(ca.issue(path).svid(), self.bundles(&[&self.b]))
    }
}

/// Reports each request's path and `CloseHandle`; `/slow` then waits for a permit of `release`.
fn handler(
    entered: mpsc::UnboundedSender<(String, CloseHandle)>,
    release: Arc<Semaphore>,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |req: Request<Incoming>| {
        let entered = entered.clone();
        let release = release.clone();
        async move {
            let handle = req.extensions().get::<CloseHandle>().cloned().unwrap();
            let path = req.uri().path().to_owned();
            let _ = entered.send((path.clone(), handle));
            if path == "/slow" {
                let _permit = release.acquire().await;
            }
            Ok::<_, Infallible>(Response::new(Full::from("done")))
        }
    })
}

struct Running {
    addr: SocketAddr,
    stats: ServerStats,
    _stop: watch::Sender<()>,
}

async fn serve(
    acceptor: TlsAcceptor,
    entered: mpsc::UnboundedSender<(String, CloseHandle)>,
    release: Arc<Semaphore>,
) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener).acceptor(acceptor);
    let addr = server.local_addr().unwrap();
    let stats = server.stats();
    let (stop, mut stopped) = watch::channel(());
    tokio::spawn(
        server.serve_with_shutdown(handler(entered, release), async move {
            let _ = stopped.changed().await;
        }),
    );
    Running {
        addr,
        stats,
        _stop: stop,
    }
}

/// One HTTP/2 connection over mTLS, and its task (which ends when the server closes it).
async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> (SendRequest<Empty<Bytes>>, JoinHandle<hyper::Result<()>>) {
    let endpoint = common::endpoint(addr, Some(SERVER_ID));
    let tls = connector.clone().oneshot(endpoint).await.unwrap();
    let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    (send, tokio::spawn(conn))
}

async fn request(
    send: &mut SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
) -> hyper::Result<String> {
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap();
    let response = send.send_request(req).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec()).unwrap())
}

/// Every `mesh.tls.connections.closed` point, as `(reason, count)`.
fn closes(metrics: &TestMetrics) -> Vec<(String, i64)> {
    metrics
        .get("mesh.tls.connections.closed")
        .points
        .into_iter()
        .map(|point| {
            let reason = point.attribute("reason").map(|v| v.to_string());
            (reason.unwrap_or_default(), point.value)
        })
        .collect()
}

#[tokio::test]
async fn a_connection_whose_root_was_removed_finishes_its_request_then_gets_goaway() {
    let pki = Pki::new();
    let metrics = TestMetrics::new();
    let (publish, identity) = IdentityWatch::channel(pki.identity(&[&pki.a, &pki.b]));
    let acceptor = TlsAcceptor::from_source(&identity)
        .meter(metrics.meter())
        .recheck_connections_on_bundle_change(true);
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let server = serve(acceptor, entered_tx, release.clone()).await;
    let addr = server.addr;
    assert_eq!(closes(&metrics), [("bundle_change".into(), 0)]);

    // B's client first: connections are re-checked in the order they were accepted, so B's has
    // been checked by the time A's is asked to close.
    let (mut send_b, conn_b) = connect(&pki.client(&pki.b, "/client-b"), addr).await;
    assert_eq!(request(&mut send_b, addr, "/fast").await.unwrap(), "done");
    let (_, handle_b) = entered.recv().await.unwrap();

    let (mut send_a, conn_a) = connect(&pki.client(&pki.a, "/client-a"), addr).await;
    let in_flight = tokio::spawn(async move {
        let outcome = request(&mut send_a, addr, "/slow").await;
        (send_a, outcome)
    });
    let (path, handle_a) = guarded("the slow request", entered.recv()).await.unwrap();
    assert_eq!(path, "/slow");

    // The server now trusts only root B.
    publish.send_replace(Arc::new(pki.identity(&[&pki.b])));
    guarded("A's connection to be asked to close", handle_a.requested()).await;
    assert!(!handle_b.is_close_requested(), "B's root is still trusted");

    // The request in flight still succeeds; then the connection ends gracefully (GOAWAY).
    release.add_permits(1);
    let (mut send_a, outcome) = guarded("the in-flight response", in_flight).await.unwrap();
    assert_eq!(outcome.unwrap(), "done");
    guarded("A's connection to end", conn_a)
        .await
        .unwrap()
        .expect("a graceful close, not an error");
    assert!(
        request(&mut send_a, addr, "/fast").await.is_err(),
        "A's connection takes no new request"
    );

    // B's connection is untouched.
    assert_eq!(request(&mut send_b, addr, "/fast").await.unwrap(), "done");
    assert!(!conn_b.is_finished());
    assert_eq!(closes(&metrics), [("bundle_change".into(), 1)]);
    assert_eq!(server.stats.close_requested(), 1);
}

#[tokio::test]
async fn by_default_a_connection_whose_root_was_removed_keeps_working() {
    let pki = Pki::new();
    let (publish, identity) = IdentityWatch::channel(pki.identity(&[&pki.a, &pki.b]));
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(1));
    let server = serve(TlsAcceptor::from_source(&identity), entered_tx, release).await;
    let addr = server.addr;
    let client_a = pki.client(&pki.a, "/client-a");

    let (mut send_a, conn_a) = connect(&client_a, addr).await;
    assert_eq!(request(&mut send_a, addr, "/fast").await.unwrap(), "done");
    let (_, handle_a) = entered.recv().await.unwrap();

    publish.send_replace(Arc::new(pki.identity(&[&pki.b])));
    // The change is in force: a new connection of A's client is refused...
    let (mut fresh, _) = connect(&client_a, addr).await;
    assert!(request(&mut fresh, addr, "/fast").await.is_err());
    // ...while the established one keeps serving.
    for _ in 0..3 {
        assert_eq!(request(&mut send_a, addr, "/fast").await.unwrap(), "done");
    }
    assert!(!handle_a.is_close_requested());
    assert!(!conn_a.is_finished());
    assert_eq!(server.stats.close_requested(), 0);
}

#[tokio::test]
async fn a_new_svid_alone_closes_nothing_and_a_later_bundle_change_still_does() {
    let pki = Pki::new();
    let (publish, identity) = IdentityWatch::channel(pki.identity(&[&pki.a, &pki.b]));
    let acceptor = TlsAcceptor::from_source(&identity).recheck_connections_on_bundle_change(true);
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let server = serve(acceptor, entered_tx, Arc::new(Semaphore::new(1))).await;
    let addr = server.addr;

    let (mut send_a, conn_a) = connect(&pki.client(&pki.a, "/client-a"), addr).await;
    assert_eq!(request(&mut send_a, addr, "/fast").await.unwrap(), "done");
    let (_, handle_a) = entered.recv().await.unwrap();

    // A rotation of the server's own SVID, bundles unchanged; then the removal of root A.
    let rotated = WorkloadIdentity::new(
        pki.b.issue("/server").svid(),
        pki.bundles(&[&pki.a, &pki.b]),
    );
    publish.send_replace(Arc::new(rotated));
    assert_eq!(request(&mut send_a, addr, "/fast").await.unwrap(), "done");
    assert!(!handle_a.is_close_requested());
    publish.send_replace(Arc::new(pki.identity(&[&pki.b])));
    guarded("A's connection to be asked to close", handle_a.requested()).await;
    guarded("A's connection to end", conn_a)
        .await
        .unwrap()
        .unwrap();
}
