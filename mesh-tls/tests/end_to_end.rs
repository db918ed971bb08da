//! mesh-core's server and client over mutual TLS on loopback: the handler sees the client's
//! verified identity on every request, over HTTP/1.1 and HTTP/2.

mod common;

use std::convert::Infallible;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mesh_core::client::{ClientConfig, HttpClient, Protocol};
use mesh_core::server::Server;
use mesh_core::{Body, PeerIdentity};
use mesh_tls::test_ca::TestCa;
use mesh_tls::{TlsAcceptor, TlsConnector};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt;

/// Echoes the caller's identity and the HTTP version.
async fn whoami(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let peer = req
        .extensions()
        .get::<PeerIdentity>()
        .map(|peer| peer.to_string())
        .unwrap_or_else(|| "anonymous".into());
    Ok(Response::new(Body::from(format!(
        "{peer} {:?}",
        req.version()
    ))))
}

async fn round_trips(protocol: Protocol, expected_version: &str) {
    let ca = TestCa::new("prod.example");
    let bundles = TestCa::bundles([&ca]);
    let acceptor = TlsAcceptor::new(ca.issue("/ns/orders/sa/api").svid(), bundles.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::new(listener)
            .acceptor(acceptor)
            .serve_with_shutdown(tower::service_fn(whoami), async {
                let _ = stopped.await;
            }),
    );

    let connector = TlsConnector::new(ca.issue("/ns/shop/sa/web").svid(), bundles);
    let endpoint = common::endpoint(addr, Some("spiffe://prod.example/ns/orders/sa/api"));
    let client = HttpClient::<Body>::new(
        endpoint,
        connector,
        ClientConfig::default().protocol(protocol),
    );
    for _ in 0..3 {
        let request = Request::get(format!("http://{addr}/"))
            .body(Body::from("hi"))
            .unwrap();
        let response = client.clone().oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            body,
            format!("spiffe://prod.example/ns/shop/sa/web {expected_version}")
        );
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn http1_over_mtls_carries_the_peer_identity() {
    round_trips(Protocol::Http1, "HTTP/1.1").await;
}

#[tokio::test]
async fn http2_over_mtls_carries_the_peer_identity() {
    round_trips(Protocol::Http2, "HTTP/2.0").await;
}

#[tokio::test]
async fn a_wrong_server_identity_is_a_connect_error() {
    let ca = TestCa::new("prod.example");
    let bundles = TestCa::bundles([&ca]);
    let acceptor = TlsAcceptor::new(ca.issue("/ns/evil").svid(), bundles.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::new(listener)
            .acceptor(acceptor)
            .serve_with_shutdown(tower::service_fn(whoami), async {
                let _ = stopped.await;
            }),
    );
    let connector = TlsConnector::new(ca.issue("/ns/shop").svid(), bundles);
    let endpoint = common::endpoint(addr, Some("spiffe://prod.example/ns/orders"));
    let client = HttpClient::<Body>::new(endpoint, connector, ClientConfig::default());
    let request = Request::get("/").body(Body::from("")).unwrap();
    let error = client.oneshot(request).await.unwrap_err();
    assert!(mesh_core::error::is_caused_by::<
        mesh_core::error::ConnectError,
    >(&*error));
    assert!(matches!(
        mesh_tls::SvidError::find(&*error),
        Some(mesh_tls::SvidError::IdentityMismatch { .. })
    ));
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
