//! The identity files through the real `mesh-sidecar` binary: every unusable file is a
//! configuration error (exit 2) naming the key, the file and the reason; setups that start but are
//! probably a mistake get `warn` log lines (`identity setup`); the `mesh-sidecar identity` tool makes files the
//! sidecar accepts, and a CA rotation done as the README says keeps requests working.

mod support;

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use http::header::HOST;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
use mesh_core::server::Server;
use mesh_core::{Body, Endpoint};
use mesh_tls::test_ca::TestCa;
use tokio::net::TcpListener;
use tower::ServiceExt;

const BIN: &str = env!("CARGO_BIN_EXE_mesh-sidecar");
const HOUR: Duration = Duration::from_secs(3600);

fn listeners(app: &str) -> String {
    format!(
        "[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[app]\naddress = \"{app}\"\n\n"
    )
}

/// The `[identity]` table over `cert.pem`, `key.pem` and `roots.pem` in the config's directory.
fn identity_table(trust_domain: &str) -> String {
    format!(
        "[identity]\ncert = \"cert.pem\"\nkey = \"key.pem\"\nbundles = {{ \"{trust_domain}\" = \"roots.pem\" }}\n"
    )
}

/// Writes the three files, runs the sidecar on them, expects exit 2; returns stderr.
fn refused(name: &str, cert: &str, key: &str, roots: &str) -> String {
    let dir = support::temp_dir("mesh-identity-test", name);
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    std::fs::write(dir.join("roots.pem"), roots).unwrap();
    let config = format!(
        "{}{}",
        listeners("127.0.0.1:9"),
        identity_table("test.example")
    );
    let stderr = support::refused_config(BIN, &dir, &config);
    // The path in the message is the one the config names, taken from the config's directory.
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    stderr
}

#[test]
fn unusable_identity_files_exit_2_naming_the_key_the_file_and_the_reason() {
    let ca = TestCa::new("test.example");
    let good = ca.issue("/a");
    let roots = ca.root_pem();
    let now = SystemTime::now();
    let expired = ca
        .svid("/a")
        .not_before(now - 2 * HOUR)
        .not_after(now - HOUR)
        .build();
    let future = ca
        .svid("/a")
        .not_before(now + HOUR)
        .not_after(now + 2 * HOUR)
        .build();
    let no_id = ca.svid("/a").uri_sans(Vec::<String>::new()).build();
    let other = ca.issue("/other");
    // Same trust domain, another CA: the bundle of test.example does not vouch for it.
    let stranger = TestCa::new("test.example").issue("/a");

    let cases: [(&str, String, String, String, &str, &str); 8] = [
        (
            "expired",
            expired.chain_pem(),
            expired.key_pem(),
            roots.clone(),
            "`identity.cert`",
            "expired",
        ),
        (
            "future",
            future.chain_pem(),
            future.key_pem(),
            roots.clone(),
            "`identity.cert`",
            "not valid yet",
        ),
        (
            "no-id",
            no_id.chain_pem(),
            no_id.key_pem(),
            roots.clone(),
            "`identity.cert`",
            "no usable SPIFFE ID",
        ),
        (
            "empty-cert",
            String::new(),
            good.key_pem(),
            roots.clone(),
            "`identity.cert`",
            "holds no certificate",
        ),
        (
            "mismatch",
            good.chain_pem(),
            other.key_pem(),
            roots.clone(),
            "`identity.key`",
            "does not belong to the certificate",
        ),
        (
            "garbage-key",
            good.chain_pem(),
            "garbage".into(),
            roots.clone(),
            "`identity.key`",
            "no usable private key",
        ),
        (
            "empty-bundle",
            good.chain_pem(),
            good.key_pem(),
            String::new(),
            "`identity.bundles.\"test.example\"`",
            "holds no certificate",
        ),
        (
            "stranger",
            stranger.chain_pem(),
            stranger.key_pem(),
            roots.clone(),
            "`identity.cert`",
            "not accepted by its own trust domain's bundle",
        ),
    ];
    for (name, cert, key, bundle, config_key, reason) in cases {
        let stderr = refused(name, &cert, &key, &bundle);
        assert!(stderr.contains(config_key), "{name}: {stderr}");
        assert!(stderr.contains(reason), "{name}: {stderr}");
        assert!(stderr.contains("configuration error"), "{name}: {stderr}");
    }
}

#[test]
fn an_unquoted_dotted_trust_domain_exits_2_with_the_advice_to_quote_it() {
    let dir = support::temp_dir("mesh-identity-test", "dotted");
    let config = format!(
        "{}[identity]\ncert = \"c.pem\"\nkey = \"k.pem\"\nbundles = {{ test.example = \"r.pem\" }}\n",
        listeners("127.0.0.1:9")
    );
    let stderr = support::refused_config(BIN, &dir, &config);
    assert!(stderr.contains("`identity.bundles`"), "{stderr}");
    assert!(
        stderr.contains("quote the trust domain: \"test.example\" = …"),
        "{stderr}"
    );
}

#[tokio::test]
async fn doubtful_setups_start_with_warnings() {
    let dir = support::temp_dir("mesh-identity-test", "warnings");
    let ca = TestCa::new("test.example");
    // The own certificate is a CA; the only bundle is of another domain and holds a leaf.
    let own = ca.svid("/a").ca(true).build();
    std::fs::write(dir.join("cert.pem"), own.chain_pem()).unwrap();
    std::fs::write(dir.join("key.pem"), own.key_pem()).unwrap();
    let leaf = TestCa::new("other.example").issue("/x");
    std::fs::write(dir.join("roots.pem"), leaf.chain_pem()).unwrap();
    let path = dir.join("sidecar.toml");
    let config = format!(
        "{}{}",
        listeners("127.0.0.1:9"),
        identity_table("other.example")
    );
    std::fs::write(&path, config).unwrap();

    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut child = support::KillOnDrop(child);
    let ready = tokio::task::spawn_blocking(move || {
        let mut first = [0u8; 32];
        let n = stdout.read(&mut first).unwrap();
        String::from_utf8_lossy(&first[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(ready.starts_with("mesh-sidecar: ready"), "{ready:?}");
    child.kill();
    let mut text = String::new();
    stderr.read_to_string(&mut text).unwrap();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("identity setup"))
        .collect();
    assert_eq!(warnings.len(), 3, "{text}");
    assert!(
        text.contains("`identity.cert`") && text.contains("is a CA certificate"),
        "{text}"
    );
    assert!(
        text.contains("no bundle in `identity.bundles` covers trust domain test.example"),
        "{text}"
    );
    assert!(
        text.contains("`identity.bundles.\"other.example\"`")
            && text.contains("not a CA certificate"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `mesh-sidecar identity <args>` in `dir`; asserts success.
fn tool(dir: &Path, args: &[&str]) {
    let out = Command::new(BIN)
        .current_dir(dir)
        .arg("identity")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "identity {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The local app behind sidecar B.
async fn start_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let app = tower::service_fn(|req: Request<hyper::body::Incoming>| async move {
        let body = format!("backend saw {}", req.uri().path());
        Ok::<_, Infallible>(Response::new(Body::from(body)))
    });
    tokio::spawn(server.serve(app));
    addr
}

async fn get(addr: SocketAddr, host: &str, path: &str) -> (StatusCode, String) {
    let client = HttpClient::<Body>::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default(),
    );
    let req = Request::get(format!("http://{host}{path}"))
        .header(HOST, host)
        .body(Body::empty())
        .unwrap();
    let res = client.oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// How many identity updates the sidecar applied (`mesh.tls.identity.updates`, `applied`).
async fn applied(admin: SocketAddr) -> u64 {
    let (_, metrics) = get(admin, "admin", "/metrics").await;
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("mesh_tls_identity_updates_total{") && l.contains("outcome=\"applied\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits until every sidecar has applied one more update than `before` (they re-read their files
/// every 5 s; bounded at 30 s).
async fn await_applied(admins: &[SocketAddr], before: &[u64]) -> Vec<u64> {
    let wait = async {
        loop {
            let mut now = Vec::new();
            for admin in admins {
                now.push(applied(*admin).await);
            }
            if now.iter().zip(before).all(|(n, b)| n > b) {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the sidecars did not apply the new files")
}

#[tokio::test]
async fn tool_files_are_accepted_and_a_ca_rotation_keeps_requests_working() {
    let dir = support::temp_dir("mesh-identity-test", "rotation");
    tool(
        &dir,
        &["init", "--trust-domain", "local.example", "--out", "ca-old"],
    );
    for name in ["a", "b"] {
        let id = format!("spiffe://local.example/{name}");
        tool(
            &dir,
            &["issue", "--ca", "ca-old", "--spiffe-id", &id, "--out", name],
        );
    }
    tool(&dir, &["bundle", "--ca", "ca-old", "--out", "roots.pem"]);
    let identity = |name: &str| {
        format!(
            "[identity]\ncert = \"{name}/svid.pem\"\nkey = \"{name}/svid-key.pem\"\nbundles = {{ \"local.example\" = \"roots.pem\" }}\n"
        )
    };
    let backend = start_backend().await;
    let b = support::start_sidecar(
        &dir.join("b.toml"),
        &format!("{}{}", listeners(&backend.to_string()), identity("b")),
    )
    .await;
    let a_config = format!(
        "{}{}[services.orders]\nauthorities = [\"orders\"]\nidentity = \"spiffe://local.example/b\"\ndiscovery = {{ kind = \"static\", endpoints = [{{ address = \"{}\" }}] }}\n",
        listeners("127.0.0.1:9"),
        identity("a"),
        b.inbound
    );
    let a = support::start_sidecar(&dir.join("a.toml"), &a_config).await;
    let (status, body) = get(a.outbound, "orders", "/before").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "backend saw /before")
    );

    // 1. A new root, added to the bundle beside the old one.
    let admins = [a.admin, b.admin];
    let mut count = vec![applied(a.admin).await, applied(b.admin).await];
    tool(
        &dir,
        &["init", "--trust-domain", "local.example", "--out", "ca-new"],
    );
    tool(
        &dir,
        &[
            "bundle",
            "--ca",
            "ca-old",
            "--ca",
            "ca-new",
            "--out",
            "roots.pem",
        ],
    );
    count = await_applied(&admins, &count).await;
    let (status, body) = get(a.outbound, "orders", "/both-roots").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // 2. Every SVID re-issued by the new root.
    for name in ["a", "b"] {
        let id = format!("spiffe://local.example/{name}");
        tool(
            &dir,
            &["issue", "--ca", "ca-new", "--spiffe-id", &id, "--out", name],
        );
    }
    count = await_applied(&admins, &count).await;
    let (status, body) = get(a.outbound, "orders", "/reissued").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // 3. The old root removed.
    tool(&dir, &["bundle", "--ca", "ca-new", "--out", "roots.pem"]);
    await_applied(&admins, &count).await;
    let (status, body) = get(a.outbound, "orders", "/new-root-only").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A new process makes new handshakes with the new material only.
    drop(a);
    let a = support::start_sidecar(&dir.join("a2.toml"), &a_config).await;
    let (status, body) = get(a.outbound, "orders", "/after").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "backend saw /after")
    );
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}
