//! The authorization layer behind the TLS acceptor, over real mTLS: allowed and denied requests,
//! `403` from mesh-core's error layer, dry run, and the decision counter.

mod common;

use std::convert::Infallible;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_core::Body;
use mesh_core::client::{ClientConfig, HttpClient};
use mesh_core::error::ErrorResponseLayer;
use mesh_core::server::Server;
use mesh_test::TestMetrics;
use mesh_tls::authz::{AuthzLayer, AuthzPolicy, AuthzRule};
use mesh_tls::test_ca::TestCa;
use mesh_tls::{Authorizer, TlsAcceptor, TlsConnector};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::{ServiceBuilder, ServiceExt};

/// Every point of `mesh.tls.authz.decisions` as (decision, count), sorted.
fn all_decisions(metrics: &TestMetrics) -> Vec<(String, i64)> {
    let mut points: Vec<_> = metrics
        .get("mesh.tls.authz.decisions")
        .points
        .into_iter()
        .map(|point| {
            let decision = point
                .attributes
                .first()
                .expect("a decision")
                .value
                .to_string();
            (decision, point.value)
        })
        .collect();
    points.sort();
    points
}

/// The decisions counted so far. Series at 0 exist from the start (see
/// `decision_series_exist_at_zero`); this counts events.
fn decisions(metrics: &TestMetrics) -> Vec<(String, i64)> {
    let mut points = all_decisions(metrics);
    points.retain(|(_, count)| *count > 0);
    points
}

async fn statuses(dry_run: bool) -> (Vec<StatusCode>, Vec<(String, i64)>) {
    let metrics = TestMetrics::new();

    let ca = TestCa::new("prod.example");
    let bundles = TestCa::bundles([&ca]);
    let policy = AuthzPolicy::new()
        .deny(AuthzRule::any_authenticated().path_prefix("/admin"))
        .allow(
            AuthzRule::peers(Authorizer::path_prefix(
                ca.trust_domain().clone(),
                "/ns/shop",
            ))
            .methods([Method::GET]),
        )
        .dry_run(dry_run)
        .meter(metrics.meter());
    let app = ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .layer(AuthzLayer::new(policy))
        .service_fn(|_req: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(Body::from("ok")))
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let acceptor = TlsAcceptor::new(ca.issue("/ns/orders").svid(), bundles.clone());
    let server = tokio::spawn(
        Server::new(listener)
            .acceptor(acceptor)
            .serve_with_shutdown(app, async {
                let _ = stopped.await;
            }),
    );

    let connector = TlsConnector::new(ca.issue("/ns/shop/sa/web").svid(), bundles);
    let endpoint = common::endpoint(addr, Some("spiffe://prod.example/ns/orders"));
    let client = HttpClient::<Body>::new(endpoint, connector, ClientConfig::default());
    let mut statuses = Vec::new();
    for (method, path) in [
        (Method::GET, "/orders"),
        (Method::POST, "/orders"),
        (Method::GET, "/admin/users"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = client.clone().oneshot(request).await.unwrap();
        statuses.push(response.status());
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    (statuses, decisions(&metrics))
}

#[tokio::test]
async fn enforced_over_mtls() {
    let (statuses, decisions) = statuses(false).await;
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::FORBIDDEN, StatusCode::FORBIDDEN]
    );
    assert_eq!(decisions, [("allow".into(), 1), ("deny".into(), 2)]);
}

#[tokio::test]
async fn dry_run_over_mtls() {
    let (statuses, decisions) = statuses(true).await;
    assert_eq!(statuses, [StatusCode::OK; 3]);
    assert_eq!(decisions, [("allow".into(), 1), ("dry_run_deny".into(), 2)]);
}

#[test]
fn decision_series_exist_at_zero() {
    let metrics = TestMetrics::new();
    let _layer = AuthzLayer::new(AuthzPolicy::new().meter(metrics.meter()));

    let points = all_decisions(&metrics);
    assert_eq!(
        points,
        [
            ("allow".to_owned(), 0),
            ("bad_request".to_owned(), 0),
            ("deny".to_owned(), 0),
            ("dry_run_deny".to_owned(), 0)
        ]
    );
}
