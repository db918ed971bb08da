//! Heap allocations per proxied request: mesh-sidecar's outbound path against the bare hyper
//! floor, in-process, over loopback, in front of the same backend.
//!
//! Run with `cargo bench -p mesh-examples --bench allocs`. divan's `AllocProfiler` counts the
//! allocations of the thread an iteration runs on; everything here runs on that one thread (a
//! current-thread tokio runtime holds the backend, the proxy under test and the client driving
//! them), so the `alloc` rows count the whole system for one request: the client's, the proxy's
//! and the backend's allocations. The client and the backend are the same in every benchmark, so
//! a proxy's own count is its row minus `direct`'s (`BENCHMARKS.md`, "Where the cost goes").
//!
//! - `direct`: the client straight to the backend, the baseline;
//! - `hyper_floor`: the `hyper-floor` binary's proxy (its very source file): hyper's HTTP/1.1
//!   server → hyper-util's pooled legacy client, no mesh layer;
//! - `mesh_core_plumbing`: mesh-core's `Server` → mesh-core's `HttpClient` to the backend, with
//!   nothing between them: what mesh-core's server and client plumbing add to the floor;
//! - `sidecar_outbound`: mesh-sidecar's outbound listener as its `run` builds it (its source
//!   file `outbound.rs`): the sidecar configuration of `bench-e2e` (one plaintext HTTP/1.1
//!   service), its telemetry (tracing sampled at the default, parent-based always-on; metrics
//!   on), `ErrorResponseLayer` → the router → the service's full client stack (trace, timeout,
//!   retry + budget, balancer, breaker, mesh-core's client).
//!
//! Counts are deterministic up to the odd timer or pool event a sample happens to include; the
//! times are of a whole loopback round trip on one thread and say little (the machine is shared).

#[path = "../src/bin/hyper-floor/proxy.rs"]
mod floor;
// Its unit tests module comes along; `#[test]` functions are dropped in a harness-less bench, so
// the import they use is unused here.
#[allow(unused_imports)]
#[path = "../src/bin/mesh-sidecar/outbound.rs"]
mod outbound;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use divan::Bencher;
use http::header::HOST;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::client::{ClientConfig, HttpClient, Protocol, TcpConnector};
use mesh_core::error::ErrorResponseLayer;
use mesh_core::server::Server;
use mesh_core::{Body, Endpoint};
use mesh_examples::runtime::{IdentityFiles, Telemetry, outbound_server_config};
use mesh_examples::stack::build_clients;
use mesh_tls::test_ca::TestCa;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

/// Requests sent through each setup before measuring: connections are open and pooled, lazily
/// built state (metric instruments, the balancer's endpoint) exists.
const WARM_UP: usize = 200;

/// The `Host` every request carries; the sidecar routes it to its one service.
const HOST_NAME: &str = "backend";

/// The driving client: hyper-util's pooled client, as the floor's upstream side.
type Driver = Client<HttpConnector, Empty<Bytes>>;

fn main() {
    divan::main();
}

#[divan::bench]
fn direct(bencher: Bencher<'_, '_>) {
    measure(bencher, |backend| async move { backend });
}

#[divan::bench]
fn hyper_floor(bencher: Bencher<'_, '_>) {
    measure(bencher, |backend| async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(floor::serve(listener, floor::Floor::new(backend)));
        addr
    });
}

#[divan::bench]
fn mesh_core_plumbing(bencher: Bencher<'_, '_>) {
    measure(bencher, |backend| async move {
        let server = Server::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = server.local_addr().unwrap();
        let client = HttpClient::<Body>::new(
            Endpoint::new(backend),
            TcpConnector::new(),
            ClientConfig::default().protocol(Protocol::Http1),
        );
        let app = tower::service_fn(move |req: Request<Incoming>| {
            client.clone().oneshot(req.map(Body::new))
        });
        tokio::spawn(server.serve(app));
        addr
    });
}

#[divan::bench]
fn sidecar_outbound(bencher: Bencher<'_, '_>) {
    let dir = std::env::temp_dir().join(format!("allocs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let setup_dir = dir.clone();
    measure(bencher, move |backend| async move {
        start_sidecar(backend, &setup_dir).await
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts the backend and, through `setup`, the proxy in front of it (which returns the address
/// to send to); warms up; then measures one request per iteration.
fn measure<F, Fut>(bencher: Bencher<'_, '_>, setup: F)
where
    F: FnOnce(SocketAddr) -> Fut,
    Fut: Future<Output = SocketAddr>,
{
    let rt = runtime();
    let (driver, uri) = rt.block_on(async {
        let backend = start_backend().await;
        let target = setup(backend).await;
        let driver: Driver = Client::builder(TokioExecutor::new()).build_http();
        let uri: Uri = format!("http://{target}/").parse().unwrap();
        for _ in 0..WARM_UP {
            one_request(&driver, &uri).await;
        }
        (driver, uri)
    });
    bencher.bench_local(|| rt.block_on(one_request(&driver, &uri)));
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `GET /` with `Host: backend`, the body read to its end; panics unless `200`.
async fn one_request(driver: &Driver, uri: &Uri) {
    let req = Request::get(uri.clone())
        .header(HOST, HOST_NAME)
        .body(Empty::new())
        .unwrap();
    let res = driver.request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    divan::black_box(body);
}

/// A minimal HTTP/1.1 backend on hyper: `200` with a 10-byte body, as `bench-e2e`'s backend.
async fn start_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"backend /\n",
                    ))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// mesh-sidecar's outbound listener in front of `backend`, assembled as its `run` does: the
/// configuration parsed and checked, telemetry installed, the identity loaded from files (the
/// plaintext service does not use it, but the connector is built from it), one client per
/// service, the routes, the server with the outbound listener's settings.
async fn start_sidecar(backend: SocketAddr, dir: &Path) -> SocketAddr {
    let ca = TestCa::new("bench.example");
    let svid = ca.issue("/proxy");
    std::fs::write(dir.join("proxy-cert.pem"), svid.chain_pem()).unwrap();
    std::fs::write(dir.join("proxy-key.pem"), svid.key_pem()).unwrap();
    std::fs::write(dir.join("roots.pem"), ca.root_pem()).unwrap();
    let text = format!(
        "[listeners]\n\
         inbound = \"127.0.0.1:0\"\n\
         outbound = \"127.0.0.1:0\"\n\
         admin = \"127.0.0.1:0\"\n\
         [app]\n\
         address = \"{backend}\"\n\
         protocol = \"http1\"\n\
         [identity]\n\
         cert = \"proxy-cert.pem\"\n\
         key = \"proxy-key.pem\"\n\
         bundles = {{ \"{td}\" = \"roots.pem\" }}\n\
         [services.backend]\n\
         authorities = [\"{HOST_NAME}\"]\n\
         transport = \"plaintext\"\n\
         protocol = \"http1\"\n\
         discovery = {{ kind = \"static\", endpoints = [{{ address = \"{backend}\" }}] }}\n",
        td = ca.trust_domain(),
    );
    let config = mesh_examples::config::parse(&text, dir).unwrap();
    // Kept for the life of the process, as the sidecar keeps them until it stops.
    let telemetry = Box::leak(Box::new(
        Telemetry::install("mesh-sidecar", &config.telemetry).unwrap(),
    ));
    let meter = telemetry.meter().clone();
    let identity = Box::leak(Box::new(
        IdentityFiles::load(&config.identity, &meter).await.unwrap(),
    ));
    let connector = identity
        .connector()
        .meter(meter.clone())
        .recheck_connections_on_bundle_change(config.identity.recheck_connections_on_bundle_change);
    let clients = build_clients(
        &config.services,
        &config.locality,
        &connector,
        &telemetry.client_telemetry(),
        1,
    )
    .unwrap();
    let mut routes = HashMap::new();
    for (service, client) in config.services.iter().zip(clients) {
        for authority in &service.authorities {
            routes.insert(authority.clone(), client.clone());
        }
    }
    let server = Server::new(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .config(outbound_server_config(config.server.clone()));
    let addr = server.local_addr().unwrap();
    let app = ErrorResponseLayer::new()
        .describe_with(mesh_tls::failure_detail)
        .layer(outbound::Router::new(
            routes,
            config.request_body_idle_timeout,
        ));
    tokio::spawn(server.serve(app));
    addr
}
