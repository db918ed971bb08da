//! The `mesh-sidecar` binary's retries, breakers and seed, end to end.
//!
//! - A local gRPC client (h2c) → the sidecar → an h2c gRPC server that answers `UNAVAILABLE` to its
//!   first call. gRPC calls are `POST`s; the sidecar retries them anyway, since `UNAVAILABLE` says
//!   the call was not processed. The admin endpoint then shows the retry, the counters' zero
//!   series and the per-endpoint breaker.
//! - Without `--seed` each sidecar draws its own seed and prints it on its ready line.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use mesh_core::client::{ClientConfig, HttpClient, Protocol, TcpConnector};
use mesh_core::server::Server;
use mesh_core::{Body, Endpoint};
use mesh_tls::test_ca::TestCa;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// An h2c gRPC server whose first call is answered `UNAVAILABLE` (trailers-only), every other one
/// `OK`; returns its address and its call count.
async fn start_grpc_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let app = tower::service_fn(move |req: Request<hyper::body::Incoming>| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            // Read the whole message, as a server does before answering a unary call.
            let _ = req.into_body().collect().await;
            let status = if n == 0 { "14" } else { "0" };
            let res = Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", status)
                .body(Body::empty())
                .unwrap();
            Ok::<_, std::convert::Infallible>(res)
        }
    });
    tokio::spawn(server.serve(app));
    (addr, calls)
}

/// One unary gRPC call over h2c to `addr`, addressed to `authority`; returns its `grpc-status`.
async fn grpc_call(addr: SocketAddr, authority: &str) -> String {
    let client = HttpClient::<Body>::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default().protocol(Protocol::Http2),
    );
    let req = Request::post(format!("http://{authority}/orders.Orders/Place"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::from(Bytes::from_static(b"\0\0\0\0\x02hi")))
        .unwrap();
    let res = client.oneshot(req).await.unwrap();
    res.headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The `/metrics` text of the admin listener at `addr`.
async fn scrape(addr: SocketAddr) -> String {
    let client = HttpClient::<Body>::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default(),
    );
    let req = Request::get("http://admin/metrics")
        .body(Body::empty())
        .unwrap();
    let body = client
        .oneshot(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// The value of the first sample line of `/metrics` that starts with `name` and contains every
/// one of `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|l| line.contains(l)))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_answered_unavailable_is_retried_through_the_sidecar() {
    let dir = support::temp_dir("mesh-sidecar-retry-test", "grpc");
    let ca = TestCa::new("test.example");
    let (server, calls) = start_grpc_server().await;
    let config = format!(
        "[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
         [app]\naddress = \"127.0.0.1:9\"\n\n{}\
         [services.orders]\nauthorities = [\"orders\"]\ntransport = \"plaintext\"\nprotocol = \"http2\"\n\
         discovery = {{ kind = \"static\", endpoints = [{{ address = \"{server}\" }}] }}\n",
        support::write_identity(&dir, &ca, "a"),
    );
    let sidecar = support::start_sidecar(&dir.join("sidecar.toml"), &config).await;

    assert_eq!(grpc_call(sidecar.outbound, "orders").await, "0");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one call, one retry");

    let metrics = scrape(sidecar.admin).await;
    let retries = |reason: &str| {
        sample(
            &metrics,
            "mesh_retry_retries",
            &[&format!("mesh_retry_reason=\"{reason}\"")],
        )
    };
    assert_eq!(retries("grpc_status"), Some(1.0), "{metrics}");
    // Every reason has a series from the start, so `increase()` sees the first retry.
    assert_eq!(retries("status"), Some(0.0), "{metrics}");
    // The breaker's state is per endpoint: closed for the one endpoint, by its address.
    let port = format!("server_port=\"{}\"", server.port());
    assert_eq!(
        sample(
            &metrics,
            "mesh_breaker_state",
            &[
                "mesh_breaker_name=\"orders\"",
                "server_address=\"127.0.0.1\"",
                &port
            ],
        ),
        Some(0.0),
        "{metrics}"
    );
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `seed=` of a ready line.
fn ready_seed(line: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("seed="))
        .unwrap_or_else(|| panic!("no seed= in {line:?}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sidecar_draws_its_own_seed_unless_one_is_given() {
    let dir = support::temp_dir("mesh-sidecar-retry-test", "seed");
    let ca = TestCa::new("test.example");
    let config = format!(
        "[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
         [app]\naddress = \"127.0.0.1:9\"\n\n{}",
        support::write_identity(&dir, &ca, "a"),
    );
    let path = dir.join("sidecar.toml");
    std::fs::write(&path, config).unwrap();
    let bin = env!("CARGO_BIN_EXE_mesh-sidecar");
    let start = |seed: Option<&'static str>| {
        let mut args = vec!["--config".to_owned(), path.display().to_string()];
        args.extend(seed.map(|s| format!("--seed={s}")));
        support::spawn_ready(bin, args)
    };
    let (first, first_line) = start(None).await;
    let _first = support::KillOnDrop(first);
    let (second, second_line) = start(None).await;
    let _second = support::KillOnDrop(second);
    // Two draws of a random u64 are equal with probability 2^-64.
    assert_ne!(
        ready_seed(&first_line),
        ready_seed(&second_line),
        "{first_line} / {second_line}"
    );
    let (given, given_line) = start(Some("7")).await;
    let _given = support::KillOnDrop(given);
    assert_eq!(ready_seed(&given_line), 7, "{given_line}");
    let _ = std::fs::remove_dir_all(&dir);
}
