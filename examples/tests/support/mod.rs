//! Helpers shared by the tests that run the example binaries as processes.

#![allow(dead_code)] // Each test binary uses a different subset.

pub(crate) mod attack;
pub(crate) mod h2_frames;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::HOST;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mesh_core::client::{ClientConfig, HttpClient, Protocol, TcpConnector};
use mesh_core::{Body, Endpoint};
use mesh_tls::test_ca::TestCa;
use std::time::Duration;

/// A fresh directory under the system temp dir, unique per process and call.
pub(crate) fn temp_dir(prefix: &str, tag: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `bin` with `args` and waits for the first line it prints (the `ready` line naming its
/// listeners); returns the child and that line.
pub(crate) async fn spawn_ready<I, S>(bin: &str, args: I) -> (Child, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    (child, line)
}

/// A child process killed (and reaped) when dropped, so a failed test leaves nothing behind.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl KillOnDrop {
    /// Kills the process now (SIGKILL on Unix) and waits for it.
    pub(crate) fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl KillOnDrop {
    /// Sends SIGTERM (through `kill`, so the tests need no libc binding) and waits for the
    /// process to exit, at most 30 s; returns how it exited.
    pub(crate) async fn terminate(self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed: {status:?}");
        let wait = tokio::task::spawn_blocking(move || {
            let mut child = self;
            child.0.wait().unwrap()
        });
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("the process did not exit within 30 s of SIGTERM")
            .unwrap()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `config` as `dir/bad.toml`, runs `bin` on it, asserts that it exits with 2 (a
/// configuration error), removes `dir` and returns what it printed on stderr.
pub(crate) fn refused_config(bin: &str, dir: &Path, config: &str) -> String {
    let path = dir.join("bad.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(out.status.code(), Some(2), "a broken config must exit 2");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A running `mesh-sidecar` and the addresses from its `ready` line; killed when dropped.
pub(crate) struct Sidecar {
    pub(crate) child: KillOnDrop,
    pub(crate) inbound: SocketAddr,
    pub(crate) outbound: SocketAddr,
    pub(crate) admin: SocketAddr,
}

/// Writes `config` to `path`, starts `mesh-sidecar` on it and waits for its `ready` line.
pub(crate) async fn start_sidecar(path: &Path, config: &str) -> Sidecar {
    start_sidecar_with(path, config, &[]).await
}

/// [`start_sidecar`] with more command-line arguments.
pub(crate) async fn start_sidecar_with(path: &Path, config: &str, args: &[&str]) -> Sidecar {
    std::fs::write(path, config).unwrap();
    let mut argv = vec!["--config".as_ref(), path.as_os_str()];
    argv.extend(args.iter().map(std::ffi::OsStr::new));
    let (child, line) = spawn_ready(env!("CARGO_BIN_EXE_mesh-sidecar"), argv).await;
    let addr = |key: &str| ready_addr(&line, key);
    Sidecar {
        inbound: addr("inbound"),
        outbound: addr("outbound"),
        admin: addr("admin"),
        child: KillOnDrop(child),
    }
}

/// Starts the `backend` binary named `name`, answering after `delay_ms`; returns it and its address.
pub(crate) async fn spawn_backend(name: &str, delay_ms: u64) -> (KillOnDrop, SocketAddr) {
    let delay = delay_ms.to_string();
    let (child, line) = spawn_ready(
        env!("CARGO_BIN_EXE_backend"),
        ["--name", name, "--delay-ms", delay.as_str()],
    )
    .await;
    let child = KillOnDrop(child);
    (child, ready_addr(&line, "listen"))
}

/// The address a `ready` line gives for `key` (`key=<addr>`).
pub(crate) fn ready_addr(line: &str, key: &str) -> SocketAddr {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        .parse()
        .unwrap()
}

/// Writes `name`'s SVID, key and the CA's roots into `dir`; returns the `[identity]` table.
pub(crate) fn write_identity(dir: &Path, ca: &TestCa, name: &str) -> String {
    let svid = ca.issue(&format!("/{name}"));
    std::fs::write(dir.join(format!("{name}-cert.pem")), svid.chain_pem()).unwrap();
    std::fs::write(dir.join(format!("{name}-key.pem")), svid.key_pem()).unwrap();
    std::fs::write(dir.join("roots.pem"), ca.root_pem()).unwrap();
    format!(
        "[identity]\ncert = \"{name}-cert.pem\"\nkey = \"{name}-key.pem\"\nbundles = {{ \"{}\" = \"roots.pem\" }}\n",
        ca.trust_domain()
    )
}

/// Writes `head` (a whole HTTP/1.1 request without body, `Connection: close` added) to `addr`
/// and returns the status code and the body of the answer.
pub(crate) async fn raw_http1(addr: SocketAddr, head: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("{head}Connection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = tokio::time::timeout(std::time::Duration::from_secs(20), exchange)
        .await
        .expect("no answer in time");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A local app on 127.0.0.1 (port 0) answering every request with `body`; returns its address.
pub(crate) async fn start_app(body: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = mesh_core::server::Server::new(listener);
    let addr = server.local_addr().unwrap();
    let app = tower::service_fn(move |_: http::Request<hyper::body::Incoming>| async move {
        Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::Body::from(body)))
    });
    tokio::spawn(server.serve(app));
    addr
}

/// `GET http://{host}{path}` to `addr` over HTTP/1.1 (a sidecar's outbound or admin listener):
/// the status, the response headers and the body.
pub(crate) async fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> (http::StatusCode, http::HeaderMap, String) {
    use http_body_util::BodyExt;
    use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
    use tower::ServiceExt;

    let client = HttpClient::<mesh_core::Body>::new(
        mesh_core::Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default(),
    );
    let req = http::Request::get(format!("http://{host}{path}"))
        .header(http::header::HOST, host)
        .body(mesh_core::Body::empty())
        .unwrap();
    let (parts, body) = client.oneshot(req).await.unwrap().into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// One plaintext request in `protocol` (HTTP/2 with prior knowledge); returns status and body.
pub(crate) async fn get_with(
    addr: SocketAddr,
    host: &str,
    path: &str,
    protocol: Protocol,
) -> (StatusCode, String) {
    let client = HttpClient::<Body>::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default().protocol(protocol),
    );
    // The client connects to `addr` whatever the URI says; the URI carries the name the app
    // addressed, as an app's HTTP/2 `:authority` would.
    let req = Request::get(format!("http://{host}{path}"))
        .header(HOST, host)
        .body(Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(client, req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Upper bound on waiting for an observable change (a discovery update reaching the balancer); a
/// safety net on a loaded machine, not a delay.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// Sends GETs of `path` through `addr` until an answer satisfies `wanted` or [`PATIENCE`] passes;
/// returns the last answer. Attempts are paced a few milliseconds apart so the loop does not
/// monopolise the machine.
pub(crate) async fn get_until(
    addr: SocketAddr,
    host: &str,
    path: &str,
    wanted: impl Fn(StatusCode, &str) -> bool,
) -> (StatusCode, String) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    loop {
        pace.tick().await;
        let (status, body) = get_with(addr, host, path, Protocol::Http1).await;
        if wanted(status, &body) || tokio::time::Instant::now() >= deadline {
            return (status, body);
        }
    }
}
