//! Mutual TLS to the control plane: mesh-xds (through mesh-tls) against go-control-plane behind
//! Go's `crypto/tls` with client certificates required, certificates issued by mesh-tls's test CA
//! and written as PEM files.
//!
//! Real sockets, so real time: every wait is on a condition (the client's status channel, the
//! discover stream) bounded by `support::WAIT`, never a sleep.

mod support;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_tls::TlsConnector;
use mesh_tls::test_ca::{TestCa, TestSvid};
use mesh_xds::{Protocol, XdsClient, XdsConfig, XdsStatus};
use serde_json::json;
use support::{ControlPlane, WAIT, next_change};
use tower::discover::Change;

const TRUST_DOMAIN: &str = "mesh.test";
const CONTROL_PLANE_PATH: &str = "/ns/istio-system/sa/istiod";
const CONTROL_PLANE_ID: &str = "spiffe://mesh.test/ns/istio-system/sa/istiod";
const CLUSTER: &str = "orders";

/// A fresh folder for one test's PEM files.
fn pem_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("xds-tls-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the server's chain and key and the client CA, and returns the server's TLS flags.
fn server_flags(dir: &Path, server: &TestSvid, client_ca: &TestCa) -> Vec<PathBuf> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    vec![
        "-tls-cert".into(),
        write("server.pem", server.chain_pem()),
        "-tls-key".into(),
        write("server-key.pem", server.key_pem()),
        "-tls-ca".into(),
        write("client-ca.pem", client_ca.root_pem()),
    ]
}

async fn start(xds: SocketAddr, flags: &[PathBuf]) -> Option<ControlPlane> {
    let args: Vec<&OsStr> = flags.iter().map(|p| p.as_os_str()).collect();
    ControlPlane::start_with(xds, &args).await
}

fn snapshot(version: &str, port: u16) -> serde_json::Value {
    json!({
        "version": version,
        "clusters": [{"name": CLUSTER}],
        "endpoints": [{"cluster": CLUSTER, "endpoints": [{"addr": "127.0.0.1", "port": port}]}],
    })
}

/// A client presenting `client` (trusting `trusted`) and expecting `expected` as the server.
fn config(cp: &ControlPlane, client: &TestSvid, trusted: &[&TestCa], expected: &str) -> XdsConfig {
    let connector = TlsConnector::new(client.svid(), TestCa::bundles(trusted.iter().copied()));
    XdsConfig::new(format!("https://{}", cp.xds), "test-node")
        .tls(connector, expected)
        .backoff_base(Duration::from_millis(50))
        .backoff_max(Duration::from_millis(200))
        .seed(1)
}

async fn wait_status(
    client: &XdsClient,
    what: &str,
    pred: impl FnMut(&XdsStatus) -> bool,
) -> XdsStatus {
    let mut status = client.status();
    match tokio::time::timeout(WAIT, status.wait_for(pred)).await {
        Ok(Ok(status)) => status.clone(),
        _ => panic!(
            "timed out waiting for {what}: {:?}",
            *client.status().borrow()
        ),
    }
}

/// (a) Config arrives over mutual TLS, on both protocol variants.
async fn config_arrives_over_mutual_tls(protocol: Protocol) {
    let ca = TestCa::new(TRUST_DOMAIN);
    let dir = pem_dir(&format!("ok-{protocol:?}"));
    let flags = server_flags(&dir, &ca.issue(CONTROL_PLANE_PATH), &ca);
    let Some(cp) = start("127.0.0.1:0".parse().unwrap(), &flags).await else {
        return;
    };
    cp.snapshot(snapshot("1", 8080)).await;
    let client_svid = ca.issue("/ns/shop/sa/sidecar");
    let config = config(&cp, &client_svid, &[&ca], CONTROL_PLANE_ID).protocol(protocol);
    let client = XdsClient::connect(config).await.unwrap();
    let mut discover = client.discover(CLUSTER);
    client.ready(CLUSTER, WAIT).await.unwrap();
    match next_change(&mut discover).await {
        Change::Insert(_, endpoint) => {
            assert_eq!(endpoint.addr(), "127.0.0.1:8080".parse().unwrap());
        }
        other => panic!("expected an insert, got {other:?}"),
    }
    let status = client.status().borrow().clone();
    assert!(status.connected);
    assert_eq!(status.streams, 1);
    assert_eq!(status.last_stream_error, None);
    let (sotw, delta) = cp.requests().await;
    match protocol {
        Protocol::Delta => assert!(delta > 0 && sotw == 0, "{sotw} {delta}"),
        _ => assert!(sotw > 0 && delta == 0, "{sotw} {delta}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_config_arrives_over_mutual_tls() {
    config_arrives_over_mutual_tls(Protocol::StateOfTheWorld).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_config_arrives_over_mutual_tls() {
    config_arrives_over_mutual_tls(Protocol::Delta).await;
}

/// (b) A client whose certificate comes from a CA the server does not trust is refused by the
/// server: no discovery request gets through, the client shows the failure and keeps retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_refused_by_the_server() {
    let ca = TestCa::new(TRUST_DOMAIN);
    let rogue = TestCa::new(TRUST_DOMAIN);
    let dir = pem_dir("client-ca");
    let flags = server_flags(&dir, &ca.issue(CONTROL_PLANE_PATH), &ca);
    let Some(cp) = start("127.0.0.1:0".parse().unwrap(), &flags).await else {
        return;
    };
    cp.snapshot(snapshot("1", 8080)).await;
    // The client trusts the real CA (so it accepts the server) but its own SVID is the rogue's.
    let client_svid = rogue.issue("/ns/shop/sa/sidecar");
    let client = XdsClient::connect(config(&cp, &client_svid, &[&ca], CONTROL_PLANE_ID))
        .await
        .unwrap();
    let _discover = client.discover(CLUSTER);
    let status = wait_status(&client, "a stream error", |s| s.last_stream_error.is_some()).await;
    let error = status.last_stream_error.unwrap();
    println!("stream error: {error}");
    // Usually "received fatal alert: UnknownCA"; when the server's reset overtakes its alert,
    // the socket error ("broken pipe", "connection reset") is all there is to name.
    assert!(
        error.starts_with("open stream: ") && error.contains("the TLS connection failed: "),
        "the error names the TLS failure: {error}"
    );
    assert!(!status.connected);
    assert!(status.loaded.is_empty());
    assert_eq!(cp.requests().await, (0, 0), "the server took no request");
}

/// (c) A control plane whose SPIFFE ID is not the expected one is refused by us, with the IDs in
/// the error; once the right control plane answers on the same address, the client's backoff
/// reconnects and the config arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_with_another_identity_is_refused_then_the_right_one_is_accepted() {
    let ca = TestCa::new(TRUST_DOMAIN);
    let dir = pem_dir("server-id");
    let impostor = server_flags(&dir, &ca.issue("/ns/default/sa/impostor"), &ca);
    let Some(cp) = start("127.0.0.1:0".parse().unwrap(), &impostor).await else {
        return;
    };
    let xds = cp.xds;
    cp.snapshot(snapshot("1", 8080)).await;
    let client_svid = ca.issue("/ns/shop/sa/sidecar");
    let client = XdsClient::connect(config(&cp, &client_svid, &[&ca], CONTROL_PLANE_ID))
        .await
        .unwrap();
    let mut discover = client.discover(CLUSTER);
    let status = wait_status(&client, "a stream error", |s| s.last_stream_error.is_some()).await;
    let error = status.last_stream_error.unwrap();
    println!("stream error: {error}");
    assert!(
        error.contains(CONTROL_PLANE_ID)
            && error.contains("spiffe://mesh.test/ns/default/sa/impostor"),
        "the error names both identities: {error}"
    );
    assert!(!status.connected);
    assert_eq!(status.streams, 0);
    assert_eq!(
        cp.requests().await,
        (0, 0),
        "no request was sent to the impostor"
    );
    cp.kill().await;

    let dir = pem_dir("server-id-real");
    let real = server_flags(&dir, &ca.issue(CONTROL_PLANE_PATH), &ca);
    let cp = start(xds, &real).await.expect("the server started before");
    cp.snapshot(snapshot("2", 9090)).await;
    client.ready(CLUSTER, WAIT).await.unwrap();
    match next_change(&mut discover).await {
        Change::Insert(_, endpoint) => assert_eq!(endpoint.addr().port(), 9090),
        other => panic!("expected an insert, got {other:?}"),
    }
}

#[tokio::test]
async fn an_https_server_without_tls_or_a_bad_server_identity_is_a_config_error() {
    let plain = XdsConfig::new("https://127.0.0.1:1", "n");
    assert!(matches!(
        plain.validate(),
        Err(mesh_xds::XdsError::Config {
            field: "server",
            ..
        })
    ));
    let ca = TestCa::new(TRUST_DOMAIN);
    let connector = TlsConnector::new(ca.issue("/a").svid(), TestCa::bundles([&ca]));
    let bad = XdsConfig::new("https://127.0.0.1:1", "n").tls(connector, "istiod.istio-system");
    assert!(matches!(
        XdsClient::connect(bad).await,
        Err(mesh_xds::XdsError::Config {
            field: "tls.server_identity",
            ..
        })
    ));
}
