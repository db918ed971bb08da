//! `mesh::ServerBuilder`: mTLS with authorization by SPIFFE ID, limits, and axum/tonic usage of
//! `mesh::Client`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request as AxumRequest, State};
use axum::routing::get;
use http::{Request, StatusCode, Uri};
use http_body_util::BodyExt;
use mesh::core::PeerIdentity;
use mesh::retry::limit::ConcurrencyConfig;
use mesh::tls::authz::{AuthzPolicy, AuthzRule};
use mesh::tls::test_ca::TestCa;
use mesh::tls::{Authorizer, SpiffeId, TlsAcceptor, TlsConnector};
use mesh::{Client, ServerBuilder};
use tower::{Service, ServiceExt};

async fn fetch(client: &Client, uri: &str) -> (StatusCode, String) {
    let req = Request::get(uri).body(String::new()).unwrap();
    let res = client.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn whoami(request: AxumRequest) -> String {
    match request.extensions().get::<PeerIdentity>() {
        Some(peer) => format!("you are {}", peer.as_str()),
        None => "you are anonymous".to_owned(),
    }
}

#[tokio::test]
async fn authorization_denies_a_spiffe_id() {
    let ca = TestCa::new("test.example");
    let bundles = TestCa::bundles([&ca]);
    let web: SpiffeId = "spiffe://test.example/web".parse().unwrap();
    let server = ServerBuilder::new(Router::new().route("/whoami", get(whoami)))
        .tls(TlsAcceptor::new(
            ca.issue("/api").svid(),
            Arc::clone(&bundles),
        ))
        .authz(AuthzPolicy::new().allow(AuthzRule::peers(Authorizer::ids([web]))))
        .concurrency_limit(ConcurrencyConfig::fixed(8))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let uri = format!("http://{}/whoami", server.local_addr());
    let client_as = |caller: &str| {
        Client::builder()
            .endpoints([server.local_addr()])
            .tls(TlsConnector::new(
                ca.issue(&format!("/{caller}")).svid(),
                Arc::clone(&bundles),
            ))
            .identity("spiffe://test.example/api")
            .build()
            .unwrap()
    };

    assert_eq!(
        fetch(&client_as("web"), &uri).await,
        (
            StatusCode::OK,
            "you are spiffe://test.example/web".to_owned()
        )
    );
    let (status, _) = fetch(&client_as("batch"), &uri).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn refused_limit_settings_name_the_key() {
    let err = ServerBuilder::new(Router::new())
        .concurrency_limit(ConcurrencyConfig::fixed(0))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap_err();
    match err {
        mesh::ServeError::Config(e) => assert_eq!(e.key(), "concurrency_limit"),
        other => panic!("{other:?}"),
    }
}

/// An axum handler that calls the downstream with `Service::call` on its clone, never polling
/// readiness (the readiness contract of `mesh::Client` allows it).
async fn orders(State(mut inventory): State<Client>) -> String {
    let req = Request::get("http://inventory/stock")
        .body(axum::body::Body::empty())
        .unwrap();
    match inventory.call(req).await {
        Ok(res) => format!("inventory says {}", res.status().as_u16()),
        Err(e) => format!("inventory failed: {e}"),
    }
}

#[tokio::test]
async fn axum_state_holds_a_client() {
    let stock = Router::new().route("/stock", get(|| async { "42" }));
    let inventory = ServerBuilder::new(stock)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = Client::builder()
        .endpoints([inventory.local_addr()])
        .build()
        .unwrap();
    let app = Router::new()
        .route("/orders", get(orders))
        .with_state(client);
    let server = ServerBuilder::new(app)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();

    let caller = Client::builder()
        .endpoints([server.local_addr()])
        .build()
        .unwrap();
    assert_eq!(
        fetch(&caller, "http://orders/orders").await,
        (StatusCode::OK, "inventory says 200".to_owned())
    );
    server.shutdown().await.unwrap();
    inventory.shutdown().await.unwrap();
}

#[tokio::test]
async fn tonic_takes_a_client_as_its_channel() {
    fn grpc_service<T: tonic::client::GrpcService<tonic::body::Body>>(service: T) -> T {
        service
    }
    let client = Client::builder()
        .endpoints(["127.0.0.1:9".parse::<std::net::SocketAddr>().unwrap()])
        .build()
        .unwrap();
    let mut grpc =
        tonic::client::Grpc::with_origin(grpc_service(client), Uri::from_static("http://greeter"));
    // Always ready: no endpoint is contacted until a call.
    grpc.ready().await.unwrap();
}
