//! Outbound connections after a trust bundle change: with
//! `TlsConnector::recheck_connections_on_bundle_change`, mesh-core's `HttpClient` stops reusing a
//! pooled connection to a server whose root was removed (its request in flight still finishes), so
//! the next request runs a new handshake, which fails; connections to servers still trusted are
//! kept. By default the pooled connection keeps working.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use mesh_core::client::{ClientConfig, HttpClient, Protocol};
use mesh_core::error::find_cause;
use mesh_core::server::{Server, ServerStats};
use mesh_core::{Body, BoxError, Endpoint};
use mesh_test::TestMetrics;
use mesh_tls::rotation::{IdentityWatch, WorkloadIdentity};
use mesh_tls::test_ca::TestCa;
use mesh_tls::{HandshakeError, TlsAcceptor, TlsConnector, TrustBundleSet};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tower::ServiceExt;

/// A bound on every wait, so a broken implementation fails the test instead of hanging it.
const GUARD: Duration = Duration::from_secs(10);

async fn guarded<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Two CAs of one trust domain: server A's SVID comes from root A, everything else from root B.
struct Pki {
    a: TestCa,
    b: TestCa,
}

impl Pki {
    fn bundles(&self, cas: &[&TestCa]) -> Arc<TrustBundleSet> {
        let roots = cas.iter().flat_map(|ca| ca.roots()).collect();
        let td = self.a.trust_domain().clone();
        Arc::new(TrustBundleSet::new().with(td, roots).unwrap())
    }

    /// The client's identity: a leaf of B, trusting the roots of `cas`.
    fn client(&self, cas: &[&TestCa]) -> WorkloadIdentity {
        WorkloadIdentity::new(self.b.issue("/client").svid(), self.bundles(cas))
    }
}

struct Running {
    addr: SocketAddr,
    id: String,
    stats: ServerStats,
    _stop: watch::Sender<()>,
}

/// A server with a leaf of `ca` at `path`, trusting B's clients. `/slow` tells `entered`, then
/// waits for a permit of `release`.
async fn serve(
    pki: &Pki,
    ca: &TestCa,
    path: &str,
    entered: mpsc::UnboundedSender<()>,
    release: Arc<Semaphore>,
) -> Running {
    let acceptor = TlsAcceptor::new(ca.issue(path).svid(), pki.bundles(&[&pki.b]));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener).acceptor(acceptor);
    let addr = server.local_addr().unwrap();
    let stats = server.stats();
    let (stop, mut stopped) = watch::channel(());
    let service = tower::service_fn(move |req: Request<Incoming>| {
        let (entered, release) = (entered.clone(), release.clone());
        async move {
            if req.uri().path() == "/slow" {
                let _ = entered.send(());
                let _permit = release.acquire().await;
            }
            Ok::<_, Infallible>(Response::new(Full::from("done")))
        }
    });
    tokio::spawn(server.serve_with_shutdown(service, async move {
        let _ = stopped.changed().await;
    }));
    Running {
        addr,
        id: format!("spiffe://{}{path}", ca.trust_domain()),
        stats,
        _stop: stop,
    }
}

fn client(connector: &TlsConnector, server: &Running, protocol: Protocol) -> HttpClient {
    let endpoint = Endpoint::builder(server.addr)
        .identity(&server.id)
        .build()
        .unwrap();
    HttpClient::new(
        endpoint,
        connector.clone(),
        ClientConfig::default().protocol(protocol),
    )
}

async fn get(client: &HttpClient, path: &str) -> Result<String, BoxError> {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = client.clone().oneshot(request).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec()).unwrap())
}

/// The `mesh.tls.connections.closed` count of outbound closes.
fn outbound_closes(metrics: &TestMetrics) -> Option<i64> {
    metrics
        .find("mesh.tls.connections.closed")?
        .points
        .iter()
        .find(|point| point.has(&[("direction", "outbound")]))
        .map(|point| point.value)
}

async fn pooled_connection_to_an_untrusted_server_is_retired(protocol: Protocol) {
    let pki = Pki {
        a: TestCa::new("prod.example"),
        b: TestCa::new("prod.example"),
    };
    let metrics = TestMetrics::new();
    let (publish, identity) = IdentityWatch::channel(pki.client(&[&pki.a, &pki.b]));
    let connector = TlsConnector::from_source(&identity)
        .meter(metrics.meter())
        .recheck_connections_on_bundle_change(true);
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let server_a = serve(
        &pki,
        &pki.a,
        "/server-a",
        entered_tx.clone(),
        release.clone(),
    )
    .await;
    let server_b = serve(&pki, &pki.b, "/server-b", entered_tx, release.clone()).await;
    let (to_a, to_b) = (
        client(&connector, &server_a, protocol),
        client(&connector, &server_b, protocol),
    );
    assert_eq!(outbound_closes(&metrics), Some(0));

    assert_eq!(get(&to_a, "/").await.unwrap(), "done");
    assert_eq!(get(&to_b, "/").await.unwrap(), "done");
    // A request in flight on A's connection when root A is removed.
    let in_flight = tokio::spawn({
        let to_a = to_a.clone();
        async move { get(&to_a, "/slow").await }
    });
    guarded("the slow request", entered.recv()).await.unwrap();

    publish.send_replace(Arc::new(pki.client(&[&pki.b])));
    guarded("A's connection to be retired", async {
        while outbound_closes(&metrics) != Some(1) {
            tokio::task::yield_now().await;
        }
    })
    .await;

    // The request in flight finishes on the retired connection.
    release.add_permits(1);
    let outcome = guarded("the in-flight response", in_flight).await.unwrap();
    assert_eq!(outcome.unwrap(), "done");

    // The next request to A runs a new handshake, which the new bundles refuse.
    let error = get(&to_a, "/").await.unwrap_err();
    let refused = find_cause::<HandshakeError>(&*error)
        .unwrap_or_else(|| panic!("expected a handshake error, got {error:?}"));
    assert_eq!(refused.kind(), "UnknownIssuer", "{refused}");
    assert_eq!(server_a.stats.accepted_connections(), 2);

    // B's connection is kept and reused.
    assert_eq!(get(&to_b, "/").await.unwrap(), "done");
    assert_eq!(server_b.stats.accepted_connections(), 1);
    assert_eq!(outbound_closes(&metrics), Some(1));
}

#[tokio::test]
async fn http1_a_pooled_connection_to_an_untrusted_server_is_not_reused() {
    pooled_connection_to_an_untrusted_server_is_retired(Protocol::Http1).await;
}

#[tokio::test]
async fn http2_a_pooled_connection_to_an_untrusted_server_is_not_reused() {
    pooled_connection_to_an_untrusted_server_is_retired(Protocol::Http2).await;
}

#[tokio::test]
async fn by_default_a_pooled_connection_to_an_untrusted_server_keeps_working() {
    let pki = Pki {
        a: TestCa::new("prod.example"),
        b: TestCa::new("prod.example"),
    };
    let (publish, identity) = IdentityWatch::channel(pki.client(&[&pki.a, &pki.b]));
    let connector = TlsConnector::from_source(&identity);
    let (entered, _) = mpsc::unbounded_channel();
    let server_a = serve(
        &pki,
        &pki.a,
        "/server-a",
        entered,
        Arc::new(Semaphore::new(0)),
    )
    .await;
    let to_a = client(&connector, &server_a, Protocol::Http2);
    assert_eq!(get(&to_a, "/").await.unwrap(), "done");

    publish.send_replace(Arc::new(pki.client(&[&pki.b])));
    for _ in 0..3 {
        tokio::task::yield_now().await;
        assert_eq!(get(&to_a, "/").await.unwrap(), "done");
    }
    assert_eq!(server_a.stats.accepted_connections(), 1);
}
