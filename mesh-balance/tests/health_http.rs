//! End to end over loopback: mesh-core's client probing mesh-core's server.
//!
//! Real sockets need the real clock (a paused clock would fire timeouts while the runtime waits
//! on I/O), so the interval here is short; every wait is for an event (a state change, readiness),
//! and the outer timeouts only guard against a hang.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mesh_balance::health::{HealthCheck, HealthCheckConfig, HealthCheckLayer, HealthState};
use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
use mesh_core::server::Server;
use mesh_core::{Body, Endpoint};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tower::{Layer, Service, ServiceExt};

const GUARD: Duration = Duration::from_secs(20);

/// A server whose `/healthz` answers 200 or 503 as `healthy` says; other paths answer "order".
async fn server(healthy: Arc<AtomicBool>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = tower::service_fn(move |req: Request<_>| {
        let healthy = healthy.clone();
        async move {
            let response = if req.uri().path() == "/healthz" {
                let mut response = Response::new(Body::from("health"));
                if !healthy.load(Ordering::SeqCst) {
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                }
                response
            } else {
                Response::new(Body::from("order"))
            };
            Ok::<_, Infallible>(response)
        }
    });
    tokio::spawn(Server::new(listener).serve(service));
    addr
}

#[tokio::test]
async fn http_check_takes_an_endpoint_out_and_puts_it_back() {
    let healthy = Arc::new(AtomicBool::new(false));
    let addr = server(healthy.clone()).await;
    let client = HttpClient::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default(),
    );
    let config = HealthCheckConfig::new(HealthCheck::http("/healthz".parse().unwrap()))
        .interval(Duration::from_millis(20))
        .unhealthy_threshold(2)
        .healthy_threshold(2)
        .seed(5);
    let checked = HealthCheckLayer::new(config).unwrap().layer(client);
    let status = checked.status();

    timeout(GUARD, status.wait_for(HealthState::Unhealthy))
        .await
        .expect("503s made the endpoint unhealthy");
    let mut waiting = checked.clone();
    let mut ready = tokio_test::task::spawn(async move {
        waiting.ready().await.unwrap();
        waiting
    });
    assert!(
        ready.poll().is_pending(),
        "unhealthy endpoints are not ready"
    );

    healthy.store(true, Ordering::SeqCst);
    let mut ready = timeout(GUARD, ready)
        .await
        .expect("recovery makes the endpoint ready");
    assert_eq!(status.state(), HealthState::Healthy);

    let response = ready
        .call(Request::get("/orders/1").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "order");
}
