//! The real control plane for interop tests: `interop/xds-server` (Envoy's go-control-plane),
//! built once per test binary with `go build` and run as a child process.
//!
//! Without a `go` on the PATH the tests print "skipped: go not found" and pass, unless
//! `MESH_REQUIRE_GO=1` (CI sets it), in which case they fail.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use mesh_balance::discover::HandleDiscover;
use mesh_core::server::Server;
use mesh_core::{Endpoint, EndpointKey};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tower::discover::Change;

/// How long any condition in these tests may take before the test fails (real sockets, so real
/// time; generous because two cores are shared with other builds).
pub const WAIT: Duration = Duration::from_secs(30);

fn server_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/xds-server")
}

/// Builds the Go server once per test binary; `None` when Go is absent and not required.
fn server_binary() -> Option<&'static Path> {
    static BINARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let required = std::env::var("MESH_REQUIRE_GO").is_ok_and(|v| v == "1");
            let have_go = std::process::Command::new("go")
                .arg("version")
                .output()
                .is_ok_and(|out| out.status.success());
            if !have_go {
                assert!(
                    !required,
                    "MESH_REQUIRE_GO=1 but go was not found on the PATH"
                );
                return None;
            }
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
            let target = dir.join("xds-server");
            // Build under a private name and rename, so concurrent test binaries never run a
            // half-written file.
            let building = dir.join(format!("xds-server.{}", std::process::id()));
            let status = std::process::Command::new("go")
                .args(["build", "-o"])
                .arg(&building)
                .arg(".")
                .current_dir(server_source())
                .status()
                .expect("run go build");
            assert!(status.success(), "go build of interop/xds-server failed");
            std::fs::rename(&building, &target).expect("move the built server in place");
            Some(target)
        })
        .as_deref()
}

/// A running go-control-plane server; killed when dropped.
pub struct ControlPlane {
    child: Child,
    /// The ADS (gRPC) address.
    pub xds: SocketAddr,
    /// The test interface (HTTP) address.
    pub http: SocketAddr,
}

impl ControlPlane {
    /// Starts a server on ephemeral ports, or prints why not and returns `None`.
    pub async fn start() -> Option<Self> {
        Self::start_at("127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts a server whose ADS port is `xds` (to restart one in place).
    pub async fn start_at(xds: SocketAddr) -> Option<Self> {
        Self::start_with(xds, &[]).await
    }

    /// Starts a server whose ADS port is `xds`, with extra command-line `args` (e.g. the
    /// `-tls-cert`, `-tls-key`, `-tls-ca` of mutual TLS).
    pub async fn start_with(xds: SocketAddr, args: &[&std::ffi::OsStr]) -> Option<Self> {
        let Some(binary) = server_binary() else {
            println!("skipped: go not found");
            return None;
        };
        let mut child = Command::new(binary)
            .arg("-xds")
            .arg(xds.to_string())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the xds server");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .expect("read the server's ports");
        let addr = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .parse()
                .unwrap()
        };
        let (xds, http) = (addr("xds="), addr("http="));
        Some(Self { child, xds, http })
    }

    /// The URI an [`XdsConfig`](mesh_xds::XdsConfig) points at.
    pub fn uri(&self) -> String {
        format!("http://{}", self.xds)
    }

    /// Sets the node's snapshot from the JSON the server's `POST /snapshot` takes.
    pub async fn snapshot(&self, body: serde_json::Value) {
        let (status, text) = http(self.http, "POST", "/snapshot", &body.to_string()).await;
        assert_eq!(status, 204, "snapshot refused: {text}");
    }

    /// The `error_detail` messages the server received, oldest first, once there are at least
    /// `wait` (the server answers with what it has after 30 s).
    pub async fn nacks(&self, wait: usize) -> Vec<String> {
        let path = format!("/nacks?wait={wait}");
        let (status, text) = http(self.http, "GET", &path, "").await;
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// How many discovery requests the server received, as (State-of-the-World, Delta).
    pub async fn requests(&self) -> (u64, u64) {
        let (status, text) = http(self.http, "GET", "/requests", "").await;
        assert_eq!(status, 200, "{text}");
        let counts: serde_json::Value = serde_json::from_str(&text).unwrap();
        (
            counts["sotw"].as_u64().unwrap(),
            counts["delta"].as_u64().unwrap(),
        )
    }

    /// Kills the server and waits until it is gone.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill the xds server");
    }
}

/// One HTTP/1.1 request on a fresh connection; returns the status and the body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A backend answering its own address.
pub async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let service = tower::service_fn(move |_req: Request<Incoming>| async move {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(addr.to_string()))))
    });
    tokio::spawn(server.serve(service));
    addr
}

/// The changes a discover stream has ready now, without waiting.
pub fn ready_changes(discover: &mut HandleDiscover) -> Vec<Change<EndpointKey, Endpoint>> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut changes = Vec::new();
    while let Poll::Ready(change) = discover.poll_next_change(&mut cx) {
        changes.push(change);
    }
    changes
}

/// Waits (bounded by [`WAIT`]) for the next change of a discover stream.
pub async fn next_change(discover: &mut HandleDiscover) -> Change<EndpointKey, Endpoint> {
    tokio::time::timeout(
        WAIT,
        std::future::poll_fn(|cx| discover.poll_next_change(cx)),
    )
    .await
    .expect("a discovery change in time")
}
