//! End-to-end checks of the `hyper-floor` binary, the bare hyper reverse proxy `bench-e2e`
//! measures mesh-sidecar against: it forwards to its upstream over a pooled HTTP/1.1 connection
//! and answers `502` when the upstream is gone; its command line refuses a missing upstream.

mod support;

use std::net::SocketAddr;
use std::process::Command;

use http::header::HOST;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mesh_core::client::{ClientConfig, HttpClient, Protocol, TcpConnector};
use mesh_core::{Body, Endpoint};
use support::KillOnDrop;
use tower::ServiceExt;

const BIN: &str = env!("CARGO_BIN_EXE_hyper-floor");

/// Starts `hyper-floor` in front of `upstream`; returns it and its listener.
async fn start_floor(upstream: SocketAddr) -> (KillOnDrop, SocketAddr) {
    let upstream = upstream.to_string();
    let (child, line) = support::spawn_ready(BIN, ["--upstream", upstream.as_str()]).await;
    assert!(line.starts_with("hyper-floor: ready"), "{line:?}");
    (KillOnDrop(child), support::ready_addr(&line, "listen"))
}

/// One HTTP/1.1 request through `client`; returns the status, the `x-backend` header and the body.
async fn get(client: &HttpClient<Body>, path: &str) -> (StatusCode, Option<String>, String) {
    let req = Request::get(format!("http://backend{path}"))
        .header(HOST, "backend")
        .body(Body::empty())
        .unwrap();
    let res = client.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let name = res
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, name, String::from_utf8_lossy(&body).into_owned())
}

fn client_to(addr: SocketAddr) -> HttpClient<Body> {
    HttpClient::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default().protocol(Protocol::Http1),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_upstream_and_a_dead_upstream_is_a_502() {
    let (mut backend, backend_addr) = support::spawn_backend("floor-upstream", 0).await;
    let (_floor, floor_addr) = start_floor(backend_addr).await;
    let client = client_to(floor_addr);

    // Path and query reach the upstream unchanged, and so does its answer (header and body).
    let (status, name, body) = get(&client, "/a/b?c=d").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(name.as_deref(), Some("floor-upstream"));
    assert_eq!(body, "floor-upstream /a/b\n");
    // A second request on the same keep-alive connection (the client pools it).
    let (status, _, body) = get(&client, "/again").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "floor-upstream /again\n")
    );

    backend.kill();
    let (status, name, body) = get(&client, "/gone").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!((name, body.as_str()), (None, ""));
}

#[test]
fn the_command_line_needs_an_upstream_and_knows_help() {
    let missing = Command::new(BIN).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("--upstream"), "{stderr}");

    let bad = Command::new(BIN)
        .args(["--upstream", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));

    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("USAGE:"));
}
