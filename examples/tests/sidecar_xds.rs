//! The sidecar fed by a real xDS control plane (Envoy's go-control-plane, `interop/xds-server`):
//! `[xds]` plus `discovery = { xds = "orders" }`, two real hyper backends, the `mesh-sidecar`
//! binary. Requests through the outbound listener reach the endpoints the control plane
//! announced; after a snapshot without one, traffic goes only to the other; `/ready` waits for
//! the first EDS answer.
//!
//! Without `go` on the PATH the test prints "skipped: go not found" and passes, unless
//! `MESH_REQUIRE_GO=1`. The Go server helper is mesh-xds's own test support, shared by path.

mod support;
#[path = "../../mesh-xds/tests/support/mod.rs"]
mod xds_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use http::StatusCode;
use mesh_core::client::Protocol;
use mesh_tls::test_ca::TestCa;
use serde_json::json;
use support::{PATIENCE, get_until};
use xds_support::{ControlPlane, backend};

/// A snapshot naming cluster `orders` (least request) with `endpoints`.
fn snapshot(version: &str, endpoints: &[SocketAddr]) -> serde_json::Value {
    let endpoints: Vec<_> = endpoints
        .iter()
        .map(|a| json!({"addr": a.ip().to_string(), "port": a.port(), "weight": 1}))
        .collect();
    json!({
        "version": version,
        "clusters": [{"name": "orders", "lb_policy": "LEAST_REQUEST"}],
        "endpoints": [{"cluster": "orders", "endpoints": endpoints}],
    })
}

/// One plaintext HTTP/1.1 request with `host` as the authority; returns the status and the body.
async fn request(addr: SocketAddr, host: &str, path: &str) -> (StatusCode, String) {
    support::get_with(addr, host, path, Protocol::Http1).await
}

/// The backends that answered `n` requests through the sidecar (each answers its own address).
async fn answered_by(outbound: SocketAddr, n: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for i in 0..n {
        let (status, body) = request(outbound, "orders", &format!("/{i}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.insert(body);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_follows_the_endpoints_the_control_plane_announces() {
    for protocol in ["sotw", "delta"] {
        let Some(cp) = ControlPlane::start().await else {
            return;
        };
        let (b1, b2) = (backend().await, backend().await);
        cp.snapshot(snapshot("1", &[b1, b2])).await;

        let dir = support::temp_dir("mesh-sidecar-xds", protocol);
        let ca = TestCa::new("test.example");
        let config = format!(
            "[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
             [app]\naddress = \"127.0.0.1:9\"\n\n{}\n\
             [xds]\nserver = \"{}\"\nnode_id = \"test-node\"\nnode_cluster = \"app\"\nprotocol = \"{protocol}\"\n\n\
             [services.orders]\nauthorities = [\"orders\"]\ntransport = \"plaintext\"\nprotocol = \"http1\"\n\
             discovery = {{ xds = \"orders\" }}\n",
            support::write_identity(&dir, &ca, "a"),
            cp.xds,
        );
        let sidecar = support::start_sidecar(&dir.join("sidecar.toml"), &config).await;

        let (status, _) =
            get_until(sidecar.admin, "admin", "/ready", |s, _| s == StatusCode::OK).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{protocol}: /ready after the first EDS answer"
        );
        // Least request spreads 40 sequential requests over both endpoints: with nothing in
        // flight the two candidates tie, and the seeded P2C picks each of them.
        let both: BTreeSet<_> = [b1.to_string(), b2.to_string()].into();
        assert_eq!(answered_by(sidecar.outbound, 40).await, both, "{protocol}");

        cp.snapshot(snapshot("2", &[b2])).await;
        let b2_only = b2.to_string();
        // Once the update is applied, nothing reaches the removed endpoint: wait (bounded) for 20
        // answers in a row from b2, then check 20 more.
        let mut streak = 0;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while streak < 20 && tokio::time::Instant::now() < deadline {
            let (status, body) = request(sidecar.outbound, "orders", "/").await;
            assert_eq!(status, StatusCode::OK, "{body}");
            streak = if body == b2_only { streak + 1 } else { 0 };
        }
        assert_eq!(
            answered_by(sidecar.outbound, 20).await,
            [b2_only].into(),
            "{protocol}"
        );
        drop(sidecar);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_waits_for_the_first_eds_answer() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    // The control plane has no snapshot for the node: CDS and EDS never answer.
    let dir = support::temp_dir("mesh-sidecar-xds", "not-ready");
    let ca = TestCa::new("test.example");
    let config = format!(
        "[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
         [app]\naddress = \"127.0.0.1:9\"\n\n{}\n\
         [xds]\nserver = \"{}\"\nnode_id = \"test-node\"\ninitial_fetch_timeout_ms = 100\n\n\
         [services.orders]\nauthorities = [\"orders\"]\ntransport = \"plaintext\"\nprotocol = \"http1\"\n\
         discovery = {{ xds = \"orders\" }}\n",
        support::write_identity(&dir, &ca, "a"),
        cp.xds,
    );
    let sidecar = support::start_sidecar(&dir.join("sidecar.toml"), &config).await;
    let (status, _) = request(sidecar.admin, "admin", "/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let b = backend().await;
    cp.snapshot(snapshot("1", &[b])).await;
    let (status, _) = get_until(sidecar.admin, "admin", "/ready", |s, _| s == StatusCode::OK).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = request(sidecar.outbound, "orders", "/").await;
    assert_eq!((status, body), (StatusCode::OK, b.to_string()));
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[xds] server_identity`: the sidecar reaches its control plane over mutual TLS with its own
/// identity, the control plane requiring a client certificate from the mesh's CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_reaches_its_control_plane_over_mutual_tls() {
    let dir = support::temp_dir("mesh-sidecar-xds-mtls", "sotw");
    let ca = TestCa::new("test.example");
    let server = ca.issue("/ns/istio-system/sa/istiod");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let flags = [
        "-tls-cert".into(),
        write("cp.pem", server.chain_pem()),
        "-tls-key".into(),
        write("cp-key.pem", server.key_pem()),
        "-tls-ca".into(),
        write("cp-client-ca.pem", ca.root_pem()),
    ];
    let args: Vec<&std::ffi::OsStr> = flags
        .iter()
        .map(|p: &std::path::PathBuf| p.as_os_str())
        .collect();
    let Some(cp) = ControlPlane::start_with("127.0.0.1:0".parse().unwrap(), &args).await else {
        return;
    };
    let b1 = backend().await;
    cp.snapshot(snapshot("1", &[b1])).await;

    let config = format!(
        "[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
         [app]\naddress = \"127.0.0.1:9\"\n\n{}\n\
         [xds]\nserver = \"{}\"\nnode_id = \"test-node\"\n\
         server_identity = \"spiffe://test.example/ns/istio-system/sa/istiod\"\n\n\
         [services.orders]\nauthorities = [\"orders\"]\ntransport = \"plaintext\"\nprotocol = \"http1\"\n\
         discovery = {{ xds = \"orders\" }}\n",
        support::write_identity(&dir, &ca, "a"),
        cp.xds,
    );
    let sidecar = support::start_sidecar(&dir.join("sidecar.toml"), &config).await;
    let (status, _) = get_until(sidecar.admin, "admin", "/ready", |s, _| s == StatusCode::OK).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "/ready after the first EDS answer over mTLS"
    );
    assert_eq!(
        answered_by(sidecar.outbound, 5).await,
        [b1.to_string()].into()
    );
    // The control plane saw our requests over its TLS port.
    let (sotw, _) = cp.requests().await;
    assert!(sotw > 0, "the control plane recorded no discovery request");
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}
