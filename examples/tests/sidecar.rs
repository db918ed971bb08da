//! End-to-end checks of the `mesh-sidecar` binary: configuration errors, the admin endpoints, a
//! request through two sidecars (app → outbound of A → mTLS → inbound of B → backend), a graceful
//! stop on SIGTERM, and outbound endpoints found through an endpoint file and through DNS.
//!
//! Every listener is configured on `127.0.0.1:0`; the sidecar prints the addresses it bound on its
//! `ready` line, so there is no race for free ports.

mod support;

use support::{Sidecar, get_until, get_with};

use std::convert::Infallible;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::header::HOST;
use http::{Request, Response, StatusCode};
use mesh_core::Body;
use mesh_core::client::Protocol;
use mesh_core::server::Server;
use mesh_tls::test_ca::TestCa;
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_mesh-sidecar");

fn listeners(app: SocketAddr) -> String {
    format!(
        "[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[app]\naddress = \"{app}\"\n\n"
    )
}

/// Starts the binary on `config` and waits for its `ready` line.
async fn start(dir: &Path, config: &str) -> Sidecar {
    let path = dir.join(format!("sidecar-{}.toml", config_tag(config)));
    support::start_sidecar(&path, config).await
}

/// A short, deterministic file name from the config text (several sidecars share a directory).
fn config_tag(config: &str) -> u64 {
    config.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// One plaintext HTTP/1.1 request; returns the status and the body.
async fn get(addr: SocketAddr, host: &str, path: &str) -> (StatusCode, String) {
    get_with(addr, host, path, Protocol::Http1).await
}

/// Runs the binary on a config expected to be refused; returns its stderr.
fn refused(config: &str) -> String {
    let dir = support::temp_dir("mesh-sidecar-test", "refused");
    support::refused_config(BIN, &dir, config)
}

#[test]
fn a_bad_address_exits_non_zero_naming_the_key() {
    let dir = support::temp_dir("mesh-sidecar-test", "bad-address");
    let ca = TestCa::new("test.example");
    let identity = support::write_identity(&dir, &ca, "a");
    let config = format!("{}{identity}", listeners("127.0.0.1:9".parse().unwrap()))
        .replace("admin = \"127.0.0.1:0\"", "admin = \"localhost:99999\"");
    // Identity paths are relative to the config file: written next to them.
    let stderr = support::refused_config(BIN, &dir, &config);
    assert!(stderr.contains("`listeners.admin`"), "{stderr}");
    assert!(stderr.contains("not a socket address"), "{stderr}");
}

#[test]
fn an_unknown_key_exits_non_zero_naming_it() {
    let stderr = refused("[listeners]\ninbound = \"127.0.0.1:0\"\ninbund = 1\n");
    assert!(stderr.contains("inbund"), "{stderr}");
}

#[test]
fn a_missing_identity_file_exits_non_zero_naming_the_key() {
    let stderr = refused(&format!(
        "{}[identity]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\nbundles = {{ \"x.example\" = \"/nonexistent/b.pem\" }}\n",
        listeners("127.0.0.1:9".parse().unwrap())
    ));
    assert!(stderr.contains("`identity.cert`"), "{stderr}");
}

/// The local app behind sidecar B: answers with the path and the `Host` it saw.
async fn start_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let app = tower::service_fn(|req: Request<hyper::body::Incoming>| async move {
        let host = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = format!("backend saw {} host={host}", req.uri().path());
        Ok::<_, Infallible>(Response::new(Body::from(body)))
    });
    tokio::spawn(server.serve(app));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_crosses_two_sidecars_and_sigterm_drains() {
    let dir = support::temp_dir("mesh-sidecar-test", "e2e");
    let ca = TestCa::new("test.example");
    let backend = start_backend().await;

    // B: in front of the backend; only workloads of test.example may call it, and not /admin.
    let b_config = format!(
        "{}{}[[authorization.rules]]\naction = \"allow\"\ntrust_domains = [\"test.example\"]\n\
         [[authorization.rules]]\naction = \"deny\"\npath_prefix = \"/admin\"\n",
        listeners(backend),
        support::write_identity(&dir, &ca, "b")
    );
    let b = start(&dir, &b_config).await;

    // A: the caller's sidecar, with one outbound service pointing at B's inbound listener.
    let a_config = format!(
        "{}{}[services.orders]\nauthorities = [\"orders\", \"orders.svc:8080\"]\nidentity = \"spiffe://test.example/b\"\ndiscovery = {{ kind = \"static\", endpoints = [{{ address = \"{}\" }}] }}\n",
        listeners("127.0.0.1:9".parse().unwrap()),
        support::write_identity(&dir, &ca, "a"),
        b.inbound
    );
    let a = start(&dir, &a_config).await;

    assert_eq!(get(a.admin, "admin", "/live").await.0, StatusCode::OK);
    assert_eq!(get(a.admin, "admin", "/ready").await.0, StatusCode::OK);
    assert_eq!(
        get(a.admin, "admin", "/nope").await.0,
        StatusCode::NOT_FOUND
    );

    let (status, body) = get(a.outbound, "orders", "/items/1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "backend saw /items/1 host=orders");
    let (status, body) = get(a.outbound, "ORDERS.svc:8080", "/x").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // HTTP/2 from the app works the same way (the authority comes from `:authority`).
    let (status, body) = get_with(a.outbound, "orders", "/h2", Protocol::Http2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.starts_with("backend saw /h2"), "{body}");

    // B's authorization refuses /admin for everyone.
    let (status, _) = get(a.outbound, "orders", "/admin/users").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _) = get(a.outbound, "unknown.svc", "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Both sides recorded the traffic.
    let (status, metrics) = get(a.admin, "admin", "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains("http_client_request_duration"),
        "{metrics}"
    );
    let (_, metrics) = get(b.admin, "admin", "/metrics").await;
    assert!(
        metrics.contains("http_server_request_duration"),
        "{metrics}"
    );

    // SIGTERM: the process drains and exits 0.
    let exit = a.child.terminate().await;
    assert!(exit.success(), "{exit:?}");
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_service_is_reached_over_http1_without_tls() {
    let dir = support::temp_dir("mesh-sidecar-test", "plaintext");
    let ca = TestCa::new("test.example");
    let backend = start_backend().await;
    // The backend speaks plain HTTP; the sidecar reaches it without mTLS, over pooled HTTP/1.1.
    let config = format!(
        "{}{}[services.web]\nauthorities = [\"web\"]\ntransport = \"plaintext\"\nprotocol = \"http1\"\ndiscovery = {{ kind = \"static\", endpoints = [{{ address = \"{backend}\" }}] }}\n",
        listeners("127.0.0.1:9".parse().unwrap()),
        support::write_identity(&dir, &ca, "a"),
    );
    let a = start(&dir, &config).await;
    for i in 0..3 {
        let (status, body) = get(a.outbound, "web", &format!("/p{i}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, format!("backend saw /p{i} host=web"));
    }
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes mesh-balance's endpoint file at `path` naming one endpoint, atomically (write, then
/// rename), so the sidecar never reads half a file.
fn write_endpoint_file(path: &Path, endpoint: SocketAddr) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, format!("[[endpoints]]\naddr = \"{endpoint}\"\n")).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_discovery_follows_the_endpoint_file() {
    let dir = support::temp_dir("mesh-sidecar-test", "file-discovery");
    let ca = TestCa::new("test.example");
    let (_one, app_one) = support::spawn_backend("one", 0).await;
    let (_two, app_two) = support::spawn_backend("two", 0).await;
    // B and B' present the same SPIFFE ID: the one A's service expects of every endpoint.
    let identity_b = support::write_identity(&dir, &ca, "b");
    let b = start(&dir, &format!("{}{identity_b}", listeners(app_one))).await;
    let b_prime = start(&dir, &format!("{}{identity_b}", listeners(app_two))).await;

    let endpoints = dir.join("orders-endpoints.toml");
    write_endpoint_file(&endpoints, b.inbound);
    let a_config = format!(
        "{}{}[services.orders]\nauthorities = [\"orders\"]\nidentity = \"spiffe://test.example/b\"\n\
         discovery = {{ kind = \"file\", path = \"orders-endpoints.toml\", interval_ms = 100 }}\n",
        listeners("127.0.0.1:9".parse().unwrap()),
        support::write_identity(&dir, &ca, "a"),
    );
    let a = start(&dir, &a_config).await;

    let (status, body) = get_until(a.outbound, "orders", "/first", |status, _| {
        status == StatusCode::OK
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "one /first\n");

    // The file now names B' only: once a request has reached B', B is out of the set.
    write_endpoint_file(&endpoints, b_prime.inbound);
    let (status, body) = get_until(a.outbound, "orders", "/moved", |status, body| {
        status == StatusCode::OK && body.starts_with("two ")
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "two /moved\n", "the file change never took effect");
    for i in 0..3 {
        let (status, body) = get(a.outbound, "orders", &format!("/after{i}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, format!("two /after{i}\n"));
    }
    drop((a, b, b_prime));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A DNS server on 127.0.0.1 (UDP, port 0) with one zone, `mesh.test.`, where `name` has an A
/// record 127.0.0.1. Served until the returned server is dropped.
async fn start_dns(
    name: &str,
) -> (
    hickory_server::Server<hickory_server::zone_handler::Catalog>,
    SocketAddr,
) {
    use std::str::FromStr;
    use std::sync::Arc;

    use hickory_server::proto::rr::rdata::{A, SOA};
    use hickory_server::proto::rr::{LowerName, Name, RData, Record};
    use hickory_server::store::in_memory::InMemoryZoneHandler;
    use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};

    let origin = Name::from_str("mesh.test.").unwrap();
    let mut zone: InMemoryZoneHandler =
        InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(
        Name::from_str("ns.mesh.test.").unwrap(),
        Name::from_str("admin.mesh.test.").unwrap(),
        1,
        60,
        60,
        60,
        0,
    );
    assert!(zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1));
    let a = RData::A(A(std::net::Ipv4Addr::LOCALHOST));
    assert!(zone.upsert_mut(Record::from_rdata(Name::from_str(name).unwrap(), 60, a), 1));
    let mut catalog = Catalog::new();
    catalog.upsert(
        LowerName::new(&origin),
        vec![Arc::new(zone) as Arc<dyn ZoneHandler>],
    );
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut server = hickory_server::Server::new(catalog);
    server.register_socket(socket);
    (server, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_discovery_reaches_the_peer_the_name_resolves_to() {
    let dir = support::temp_dir("mesh-sidecar-test", "dns-discovery");
    let ca = TestCa::new("test.example");
    let (_app, app) = support::spawn_backend("dns-backend", 0).await;
    let b = start(
        &dir,
        &format!(
            "{}{}",
            listeners(app),
            support::write_identity(&dir, &ca, "b")
        ),
    )
    .await;
    let (_dns, nameserver) = start_dns("orders.mesh.test.").await;
    let a_config = format!(
        "{}{}[services.orders]\nauthorities = [\"orders\"]\nidentity = \"spiffe://test.example/b\"\n\
         discovery = {{ kind = \"dns\", host = \"orders.mesh.test\", port = {}, nameserver = \"{nameserver}\" }}\n",
        listeners("127.0.0.1:9".parse().unwrap()),
        support::write_identity(&dir, &ca, "a"),
        b.inbound.port(),
    );
    let a = start(&dir, &a_config).await;
    let (status, body) = get_until(a.outbound, "orders", "/dns", |status, _| {
        status == StatusCode::OK
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "dns-backend /dns\n");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_with_an_adaptive_inbound_limit_serves() {
    let dir = support::temp_dir("mesh-sidecar-test", "vegas");
    let ca = TestCa::new("test.example");
    let backend = start_backend().await;
    // B limits its inbound requests with Vegas, up to 64 in flight.
    let b_config = format!(
        "{}limit = \"vegas\"\nmax_concurrency = 64\n\n{}[app.vegas]\nmin_limit = 2\nprobe_samples = 5\n",
        listeners(backend),
        support::write_identity(&dir, &ca, "b"),
    );
    let b = start(&dir, &b_config).await;
    let a_config = format!(
        "{}{}[services.orders]\nauthorities = [\"orders\"]\nidentity = \"spiffe://test.example/b\"\ndiscovery = {{ kind = \"static\", endpoints = [{{ address = \"{}\" }}] }}\n",
        listeners("127.0.0.1:9".parse().unwrap()),
        support::write_identity(&dir, &ca, "a"),
        b.inbound
    );
    let a = start(&dir, &a_config).await;
    // Past the first minimum-latency measurement (5 samples) and on.
    for i in 0..10 {
        let (status, body) = get(a.outbound, "orders", &format!("/v{i}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, format!("backend saw /v{i} host=orders"));
    }
    let (_, metrics) = get(b.admin, "admin", "/metrics").await;
    assert!(metrics.contains("mesh_limit_concurrency"), "{metrics}");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A backend that reads each request body to its end before answering `200 read <n> bytes`.
async fn start_reading_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let app = tower::service_fn(|req: Request<hyper::body::Incoming>| async move {
        let body = http_body_util::BodyExt::collect(req.into_body()).await?;
        let read = body.to_bytes().len();
        Ok::<_, hyper::Error>(Response::new(Body::from(format!("read {read} bytes"))))
    });
    tokio::spawn(server.serve(app));
    addr
}

/// A client that sends its request head and part of its body, then stalls, must not hold the
/// upstream connection: with a pool of one connection, the stalled upload is cut after the
/// configured `request_body_idle_timeout_ms` (answered 400 `bad_request`) and the next request is
/// served. Before the bound, the upload held the only connection for as long as the client liked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_cut_and_frees_its_upstream_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = support::temp_dir("mesh-sidecar-test", "stalled-upload");
    let ca = TestCa::new("test.example");
    let backend = start_reading_backend().await;
    let config = format!(
        "{}{}[server]\nrequest_body_idle_timeout_ms = 300\n\n[services.web]\nauthorities = [\"web\"]\ntransport = \"plaintext\"\nprotocol = \"http1\"\npool = {{ max_connections = 1 }}\ndiscovery = {{ kind = \"static\", endpoints = [{{ address = \"{backend}\" }}] }}\n",
        listeners("127.0.0.1:9".parse().unwrap()),
        support::write_identity(&dir, &ca, "a"),
    );
    let a = start(&dir, &config).await;

    let mut stalled = tokio::net::TcpStream::connect(a.outbound).await.unwrap();
    stalled
        .write_all(b"POST /upload HTTP/1.1\r\nHost: web\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let mut answer = vec![0; 512];
    let read = tokio::time::timeout(Duration::from_secs(20), stalled.read(&mut answer))
        .await
        .expect("the stalled upload must be cut, not left waiting")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("mesh-error: bad_request"), "{answer}");

    // The one upstream connection is free again.
    let (status, body) = support::raw_http1(
        a.outbound,
        "POST /next HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\n".to_owned(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "read 0 bytes"));
    drop((a, stalled));
    let _ = std::fs::remove_dir_all(&dir);
}
