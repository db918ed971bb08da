//! The sidecar's logs and its outbound error reasons, end to end: a peer presenting the wrong
//! SPIFFE ID is answered `502` with the typed reason in `mesh-error-detail` (and nothing of the
//! certificate), the caller's stderr has a log line naming that reason, and `--log-format json`
//! writes one valid JSON object per line.
//!
//! Each sidecar's stderr goes to a file read after the process is killed; listeners are on
//! `127.0.0.1:0`, the addresses come from the `ready` line.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use http::header::HOST;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
use mesh_core::{Body, Endpoint};
use mesh_tls::test_ca::TestCa;
use support::KillOnDrop;
use tower::ServiceExt;

const BIN: &str = env!("CARGO_BIN_EXE_mesh-sidecar");

/// A sidecar whose stderr is written to `stderr`; killed when dropped.
struct Logged {
    child: KillOnDrop,
    inbound: SocketAddr,
    outbound: SocketAddr,
    stderr: PathBuf,
}

impl Logged {
    /// Kills the process and returns everything it wrote to stderr.
    fn stop(mut self) -> String {
        self.child.kill();
        std::fs::read_to_string(&self.stderr).unwrap()
    }
}

/// Writes `config` as `dir/<name>.toml` and starts the sidecar on it with `args`, its stderr
/// going to `dir/<name>.stderr`, without `RUST_LOG` or `MESH_LOG_FORMAT` from the test's
/// environment; waits for the `ready` line.
async fn start(dir: &Path, name: &str, config: &str, args: &[&str]) -> Logged {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let stderr = dir.join(format!("{name}.stderr"));
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("MESH_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = KillOnDrop(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    Logged {
        child,
        inbound: support::ready_addr(&line, "inbound"),
        outbound: support::ready_addr(&line, "outbound"),
        stderr,
    }
}

fn listeners() -> &'static str {
    "[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[app]\naddress = \"127.0.0.1:9\"\n\n"
}

/// A's config: one service `orders` at `endpoint`, which must present `spiffe://test.example/b`.
fn caller(identity: &str, endpoint: SocketAddr) -> String {
    format!(
        "{}{identity}[services.orders]\nauthorities = [\"orders\"]\nidentity = \"spiffe://test.example/b\"\ndiscovery = {{ kind = \"static\", endpoints = [{{ address = \"{endpoint}\" }}] }}\n",
        listeners()
    )
}

/// One plaintext HTTP/1.1 GET to `addr` for `host`; the response with its body read.
async fn get(addr: SocketAddr, host: &str) -> (Response<()>, String) {
    let client = HttpClient::<Body>::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default(),
    );
    let req = Request::get(format!("http://{host}/items"))
        .header(HOST, host)
        .body(Body::empty())
        .unwrap();
    let res = client.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        Response::from_parts(parts, ()),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_the_wrong_spiffe_id_is_a_502_with_the_reason_and_a_log_line() {
    let dir = support::temp_dir("mesh-sidecar-logs", "wrong-id");
    let ca = TestCa::new("test.example");
    // B presents spiffe://test.example/c where A expects .../b.
    let b_config = format!("{}{}", listeners(), support::write_identity(&dir, &ca, "c"));
    let b = start(&dir, "b", &b_config, &[]).await;
    let a_config = caller(&support::write_identity(&dir, &ca, "a"), b.inbound);
    let a = start(&dir, "a", &a_config, &[]).await;

    let (res, body) = get(a.outbound, "orders").await;
    let a_log = a.stop();
    let b_inbound = b.inbound.to_string();
    drop(b);
    let reason = "tls: certificate not valid for the expected identity (IdentityMismatch)";
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY, "{body}\n{a_log}");
    assert_eq!(res.headers()["mesh-error"], "connect");
    assert_eq!(res.headers()["mesh-error-detail"], reason);
    assert_eq!(body, format!("connect\n{reason}\n"));
    // Nothing of the certificates or the peer's address leaves the process.
    let answer = format!("{:?}{body}", res.headers());
    assert!(!answer.contains("spiffe://"), "{answer}");
    assert!(!answer.contains(&b_inbound), "{answer}");

    // A's log: the startup summary, and the failure with the request and the typed reason.
    assert!(a_log.contains("mesh-sidecar started"), "{a_log}");
    let line = a_log
        .lines()
        .find(|line| line.contains("answering a failure at the edge"))
        .unwrap_or_else(|| panic!("no failure line in A's log:\n{a_log}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("IdentityMismatch"), "{line}");
    assert!(line.contains("authority=\"orders\""), "{line}");
    assert!(line.contains("method=GET"), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_valid_object_per_line() {
    let dir = support::temp_dir("mesh-sidecar-logs", "json");
    let ca = TestCa::new("test.example");
    let b_config = format!("{}{}", listeners(), support::write_identity(&dir, &ca, "c"));
    let b = start(&dir, "b", &b_config, &[]).await;
    let a_config = caller(&support::write_identity(&dir, &ca, "a"), b.inbound);
    let a = start(&dir, "a", &a_config, &["--log-format", "json"]).await;
    let (res, _) = get(a.outbound, "orders").await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let log = a.stop();
    drop(b);

    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();
    let message =
        |event: &serde_json::Value| event["fields"]["message"].as_str().map(str::to_owned);
    let started = events
        .iter()
        .find(|e| message(e).as_deref() == Some("mesh-sidecar started"))
        .unwrap_or_else(|| panic!("no startup summary in {log}"));
    assert_eq!(started["level"], "INFO");
    assert!(started["fields"]["seed"].is_u64(), "{started}");
    assert!(
        started["fields"]["services"]
            .as_str()
            .unwrap()
            .contains("orders")
    );
    let failure = events
        .iter()
        .find(|e| message(e).as_deref() == Some("answering a failure at the edge"))
        .unwrap_or_else(|| panic!("no failure line in {log}"));
    assert_eq!(failure["level"], "WARN");
    assert_eq!(failure["fields"]["cause"], "connect");
    assert_eq!(
        failure["fields"]["detail"],
        "tls: certificate not valid for the expected identity (IdentityMismatch)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
