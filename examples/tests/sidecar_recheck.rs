//! `[identity] recheck_connections_on_bundle_change` on the outbound side, through the real
//! `mesh-sidecar` binary: when the caller's bundle file drops the root of the backend sidecar's
//! certificate, the pooled mTLS connection to it is not reused, and the next request fails its
//! new handshake (502); without the option the pooled connection keeps serving.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use mesh_tls::test_ca::TestCa;

/// `GET` through `addr`: the status, the `mesh-error` header and the body.
async fn get(addr: SocketAddr, host: &str, path: &str) -> (StatusCode, String, String) {
    let (status, headers, body) = support::get(addr, host, path).await;
    let cause = headers
        .get("mesh-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, cause, body)
}

/// Sums the sidecar's `{name}` samples whose labels contain every one of `labels`.
async fn metric(admin: SocketAddr, name: &str, labels: &[&str]) -> u64 {
    let (_, _, metrics) = get(admin, "admin", "/metrics").await;
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn applied(admin: SocketAddr) -> u64 {
    metric(
        admin,
        "mesh_tls_identity_updates_total",
        &["outcome=\"applied\""],
    )
    .await
}

/// Writes `name`'s SVID from `ca` and a bundle file of `roots`; returns the `[identity]` table.
fn write_identity(dir: &Path, name: &str, ca: &TestCa, roots: &[&TestCa], recheck: bool) -> String {
    let svid = ca.issue(&format!("/{name}"));
    std::fs::write(dir.join(format!("{name}-cert.pem")), svid.chain_pem()).unwrap();
    std::fs::write(dir.join(format!("{name}-key.pem")), svid.key_pem()).unwrap();
    write_roots(dir, name, roots);
    format!(
        "[identity]\ncert = \"{name}-cert.pem\"\nkey = \"{name}-key.pem\"\n\
         bundles = {{ \"{}\" = \"{name}-roots.pem\" }}\nrecheck_connections_on_bundle_change = {recheck}\n",
        ca.trust_domain()
    )
}

/// Replaces `name`'s bundle file (write, then rename, as the README asks).
fn write_roots(dir: &Path, name: &str, roots: &[&TestCa]) {
    let pem: String = roots.iter().map(|ca| ca.root_pem()).collect();
    let tmp = dir.join(format!("{name}-roots.pem.tmp"));
    std::fs::write(&tmp, pem).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}-roots.pem"))).unwrap();
}

fn listeners(app: SocketAddr) -> String {
    format!(
        "[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[app]\naddress = \"{app}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_connections_to_a_backend_whose_root_was_removed_are_not_reused() {
    let dir = support::temp_dir("mesh-recheck-test", "outbound");
    let (old, kept) = (TestCa::new("test.example"), TestCa::new("test.example"));
    let backend = support::start_app("backend").await;

    // B: its certificate from the root the callers will stop trusting.
    let b_config = format!(
        "{}{}",
        listeners(backend),
        write_identity(&dir, "b", &old, &[&old, &kept], false)
    );
    let b = support::start_sidecar(&dir.join("b.toml"), &b_config).await;

    // Two callers of B, trusting both roots: one re-checks, one does not.
    let caller = |name: &str, recheck: bool| {
        format!(
            "{}{}[services.orders]\nauthorities = [\"orders\"]\nidentity = \"spiffe://test.example/b\"\n\
             discovery = {{ kind = \"static\", endpoints = [{{ address = \"{}\" }}] }}\n",
            listeners("127.0.0.1:9".parse().unwrap()),
            write_identity(&dir, name, &kept, &[&old, &kept], recheck),
            b.inbound
        )
    };
    let on = support::start_sidecar(&dir.join("on.toml"), &caller("on", true)).await;
    let off = support::start_sidecar(&dir.join("off.toml"), &caller("off", false)).await;
    for sidecar in [&on, &off] {
        let (status, _, body) = get(sidecar.outbound, "orders", "/before").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "backend"));
    }
    let closed = ["direction=\"outbound\"", "reason=\"bundle_change\""];
    let closed_name = "mesh_tls_connections_closed_total";
    assert_eq!(metric(on.admin, closed_name, &closed).await, 0);

    // Both callers drop B's root; they re-read their files every 5 s (bounded at 30 s).
    let before = [applied(on.admin).await, applied(off.admin).await];
    write_roots(&dir, "on", &[&kept]);
    write_roots(&dir, "off", &[&kept]);
    let wait = async {
        // The re-check follows the update in the caller that has it on: wait for its close.
        while applied(on.admin).await <= before[0]
            || applied(off.admin).await <= before[1]
            || metric(on.admin, closed_name, &closed).await == 0
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the callers did not apply the new bundle, or `on` retired no connection");

    // With the option, the pooled connection is retired and the new handshake refused.
    let (status, cause, body) = get(on.outbound, "orders", "/after").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(cause, "connect", "{body}");
    assert_eq!(
        metric(on.admin, closed_name, &closed).await,
        1,
        "one connection retired"
    );

    // Without it, the pooled connection opened before the change keeps serving.
    let (status, _, body) = get(off.outbound, "orders", "/after").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "backend"));

    drop((on, off, b));
    let _ = std::fs::remove_dir_all(&dir);
}
