//! What the attack tests share: a sidecar with one plaintext service in front of a backend that
//! records every request it sees, the check that the sidecar survived (still running, still
//! serving), its resident memory, and a byte-exact HTTP/1.1 exchange.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::HOST;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mesh_core::client::{ClientConfig, HttpClient, Protocol, TcpConnector};
use mesh_core::server::Server;
use mesh_core::{Body, Endpoint};
use mesh_tls::test_ca::TestCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::Sidecar;

/// A bound on every wait, so a broken sidecar fails the test instead of hanging it; a safety net
/// on a loaded machine, never a delay.
pub(crate) const GUARD: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test after [`GUARD`].
pub(crate) async fn guarded<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(GUARD, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// One request as the backend saw it.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) body_len: usize,
    pub(crate) body_hash: u64,
}

/// Every request the backend saw, in arrival order (clones share the log).
#[derive(Clone, Debug, Default)]
pub(crate) struct BackendLog {
    log: Arc<Mutex<Vec<Seen>>>,
}

impl BackendLog {
    /// A copy of the log.
    pub(crate) fn all(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests were seen.
    pub(crate) fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

/// FNV-1a over `bytes`: the checksum the tests compare bodies by.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A backend on 127.0.0.1 that reads each request's whole body, records it, and answers with
/// the status `answer` gives for the request's index (0 for the first) and the body
/// `<method> <path> <body length> <body hash>`.
pub(crate) async fn recording_backend(answer: fn(usize) -> StatusCode) -> (SocketAddr, BackendLog) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let seen = BackendLog::default();
    let log = seen.clone();
    let app = tower::service_fn(move |req: Request<hyper::body::Incoming>| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await?.to_bytes();
            let seen = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                body_len: body.len(),
                body_hash: fnv1a(&body),
            };
            let text = format!(
                "{} {} {} {:016x}",
                seen.method, seen.path, seen.body_len, seen.body_hash
            );
            let index = {
                let mut log = log.log.lock().unwrap();
                log.push(seen);
                log.len() - 1
            };
            let mut res = Response::new(Body::from(text));
            *res.status_mut() = answer(index);
            Ok::<_, hyper::Error>(res)
        }
    });
    tokio::spawn(server.serve(app));
    (addr, seen)
}

/// The sidecar configuration: every listener on port 0, identity `a` written into `dir`, then
/// `rest` (service tables, a `[server]` table).
pub(crate) fn sidecar_config(dir: &Path, rest: &str) -> String {
    let ca = TestCa::new("test.example");
    format!(
        "[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
         [app]\naddress = \"127.0.0.1:9\"\n\n{}{rest}",
        super::write_identity(dir, &ca, "a"),
    )
}

/// `[services.<name>]`: plaintext HTTP/1.1 to `backend`, answering to authority `name`, then
/// `extra` lines of the same table.
pub(crate) fn plaintext_service(name: &str, backend: SocketAddr, extra: &str) -> String {
    format!(
        "[services.{name}]\nauthorities = [\"{name}\"]\ntransport = \"plaintext\"\nprotocol = \"http1\"\n\
         discovery = {{ kind = \"static\", endpoints = [{{ address = \"{backend}\" }}] }}\n{extra}\n"
    )
}

/// Starts a sidecar on `config`, written into `dir`.
pub(crate) async fn start(dir: &Path, config: &str) -> Sidecar {
    let path: PathBuf = dir.join("sidecar.toml");
    super::start_sidecar(&path, config).await
}

/// One request through `addr` in `protocol`; returns status, the `mesh-error` header and body.
pub(crate) async fn send(
    addr: SocketAddr,
    protocol: Protocol,
    req: Request<Body>,
) -> (StatusCode, Option<String>, String) {
    let client = HttpClient::<Body>::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default().protocol(protocol),
    );
    let res = guarded("an answer", client.oneshot(req)).await.unwrap();
    let status = res.status();
    let cause = res
        .headers()
        .get("mesh-error")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = guarded("the body", res.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    (status, cause, String::from_utf8_lossy(&body).into_owned())
}

/// A `GET http://<host><path>`.
pub(crate) fn get(host: &str, path: &str) -> Request<Body> {
    Request::get(format!("http://{host}{path}"))
        .header(HOST, host)
        .body(Body::empty())
        .unwrap()
}

/// Asserts that the sidecar process is still running and answers `GET /after` for `host` with
/// `200` over both HTTP versions, on fresh connections.
pub(crate) async fn assert_still_serving(sidecar: &mut Sidecar, host: &str) {
    assert!(
        sidecar.child.0.try_wait().unwrap().is_none(),
        "the sidecar exited"
    );
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let (status, _, body) = send(sidecar.outbound, protocol, get(host, "/after")).await;
        assert_eq!(status, StatusCode::OK, "{protocol:?}: {body}");
    }
    assert!(
        sidecar.child.0.try_wait().unwrap().is_none(),
        "the sidecar exited"
    );
}

/// The resident set of process `pid`, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// How much the sidecar's resident set may grow over one attack: generous (allocator caches,
/// the first HTTP/2 connection's buffers), and far below what an unbounded decoder or queue
/// would take from the attacks' payloads (megabytes per connection, thousands of streams).
pub(crate) const RSS_GROWTH_BOUND_KIB: u64 = 64 * 1024;

/// Writes `bytes` to `addr` and returns everything the server sent until it closed the
/// connection (a reset ends the answer too).
pub(crate) async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before taking every byte; what it sent is what counts.
    let _ = tcp.write_all(bytes).await;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match guarded("the server to close", tcp.read(&mut chunk)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status codes of the HTTP/1.1 responses in `answer`, in order.
pub(crate) fn statuses(answer: &str) -> Vec<u16> {
    answer
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| answer.get(at + 9..at + 12)?.parse().ok())
        .collect()
}
