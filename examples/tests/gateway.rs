//! End-to-end checks of the `mesh-gateway` binary: configuration errors, routing by host and path
//! prefix to an mTLS backend, request ids, per-route header edits, the rate limit's 429 with
//! `Retry-After`, and a graceful stop on SIGTERM.
//!
//! Every listener is on `127.0.0.1:0`; the gateway prints the addresses it bound on its `ready`
//! line.

mod support;

use std::convert::Infallible;

use std::net::SocketAddr;
use std::path::Path;

use http::header::{HOST, RETRY_AFTER};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
use mesh_core::server::Server;
use mesh_core::{Body, Endpoint};
use mesh_tls::TlsAcceptor;
use mesh_tls::test_ca::TestCa;
use tokio::net::TcpListener;
use tower::ServiceExt;

const BIN: &str = env!("CARGO_BIN_EXE_mesh-gateway");

/// Listeners and the gateway's `[identity]` (an SVID of `ca`), written next to the config.
fn preamble(dir: &Path, ca: &TestCa) -> String {
    let svid = ca.issue("/gateway");
    std::fs::write(dir.join("gw-cert.pem"), svid.chain_pem()).unwrap();
    std::fs::write(dir.join("gw-key.pem"), svid.key_pem()).unwrap();
    std::fs::write(dir.join("roots.pem"), ca.root_pem()).unwrap();
    format!(
        "[listeners]\npublic = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
         [identity]\ncert = \"gw-cert.pem\"\nkey = \"gw-key.pem\"\nbundles = {{ \"{}\" = \"roots.pem\" }}\n\n",
        ca.trust_domain()
    )
}

fn service(name: &str, backend: SocketAddr) -> String {
    format!(
        "[services.{name}]\nidentity = \"spiffe://test.example/backend\"\n\
         discovery = {{ kind = \"static\", endpoints = [{{ address = \"{backend}\" }}] }}\n\n"
    )
}

/// A running gateway; killed when dropped.
struct Gateway {
    child: support::KillOnDrop,
    public: SocketAddr,
    admin: SocketAddr,
}

async fn start(dir: &Path, name: &str, config: &str) -> Gateway {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let (child, line) =
        support::spawn_ready(BIN, ["--config", path.to_str().unwrap(), "--seed", "1"]).await;
    let addr = |name: &str| support::ready_addr(&line, name);
    Gateway {
        public: addr("public"),
        admin: addr("admin"),
        child: support::KillOnDrop(child),
    }
}

/// An mTLS backend with SVID `spiffe://test.example/backend`: answers with the path and the
/// request headers it saw, one `name: value` per line.
async fn start_backend(ca: &TestCa) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let acceptor = TlsAcceptor::new(ca.issue("/backend").svid(), TestCa::bundles([ca]));
    let server = Server::new(listener).acceptor(acceptor);
    let addr = server.local_addr().unwrap();
    let app = tower::service_fn(|req: Request<hyper::body::Incoming>| async move {
        let mut body = format!("path {}\n", req.uri().path());
        for (name, value) in req.headers() {
            body.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
        }
        Ok::<_, Infallible>(Response::new(Body::from(body)))
    });
    tokio::spawn(server.serve(app));
    addr
}

/// One plaintext HTTP/1.1 request with `headers`; returns status, response headers and body.
async fn send(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let client = HttpClient::<Body>::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default(),
    );
    let mut req = Request::get(path).header(HOST, host);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = client
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[test]
fn a_route_to_an_unknown_service_exits_2_naming_the_key() {
    let dir = support::temp_dir("mesh-gateway-test", "bad-route");
    let ca = TestCa::new("test.example");
    let config = format!(
        "{}[[routes]]\npath_prefix = \"/\"\nservice = \"nope\"\n",
        preamble(&dir, &ca)
    );
    let stderr = support::refused_config(BIN, &dir, &config);
    assert!(stderr.contains("`routes[0].service`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_prefix_with_request_ids_and_header_edits_then_drains() {
    let dir = support::temp_dir("mesh-gateway-test", "e2e");
    let ca = TestCa::new("test.example");
    let backend = start_backend(&ca).await;
    let config = format!(
        "{}{}{}\
         [[routes]]\nhost = \"api.example\"\npath_prefix = \"/orders\"\nservice = \"orders\"\n\
         add_headers = {{ \"x-route\" = \"orders\" }}\nremove_headers = [\"cookie\"]\n\n\
         [[routes]]\nhost = \"api.example\"\npath_prefix = \"/\"\nservice = \"other\"\n\
         add_headers = {{ \"x-route\" = \"api-root\" }}\n\n\
         [[routes]]\npath_prefix = \"/public\"\nservice = \"other\"\n\
         add_headers = {{ \"x-route\" = \"any-host\" }}\n",
        preamble(&dir, &ca),
        service("orders", backend),
        service("other", backend),
    );
    let gw = start(&dir, "e2e", &config).await;

    // Host + longest prefix; the route's header edits reach the backend.
    let (status, headers, body) = send(
        gw.public,
        "API.example:8443",
        "/orders/7",
        &[("cookie", "secret=1"), ("x-keep", "yes")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.starts_with("path /orders/7\n"), "{body}");
    assert!(body.contains("x-route: orders\n"), "{body}");
    assert!(body.contains("x-keep: yes\n"), "{body}");
    assert!(!body.contains("cookie"), "{body}");
    // A generated request id: 32 hex digits, echoed, and the one the backend saw.
    let id = headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert!(body.contains(&format!("x-request-id: {id}\n")), "{body}");

    // Segment-aware prefix: /ordersx falls to the host's `/` route.
    let (_, _, body) = send(gw.public, "api.example", "/ordersx", &[]).await;
    assert!(body.contains("x-route: api-root\n"), "{body}");
    // A host-less route serves other hosts.
    let (status, _, body) = send(gw.public, "else.example", "/public/a", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("x-route: any-host\n"), "{body}");

    // A sane client id is kept; an insane one is replaced.
    let (_, headers, body) =
        send(gw.public, "api.example", "/", &[("x-request-id", "abc-1")]).await;
    assert_eq!(headers["x-request-id"], "abc-1");
    assert!(body.contains("x-request-id: abc-1\n"), "{body}");
    let long = "a".repeat(129);
    let (_, headers, _) = send(gw.public, "api.example", "/", &[("x-request-id", &long)]).await;
    assert_eq!(headers["x-request-id"].len(), 32);

    // No route: 404, still with a request id.
    let (status, headers, _) = send(gw.public, "else.example", "/orders", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers.contains_key("x-request-id"));

    let (status, _, metrics) = send(gw.admin, "admin", "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains("http_client_request_duration"),
        "{metrics}"
    );
    assert_eq!(
        send(gw.admin, "admin", "/ready", &[]).await.0,
        StatusCode::OK
    );

    // SIGTERM: drains and exits 0.
    let exit = gw.child.terminate().await;
    assert!(exit.success(), "{exit:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_429_with_retry_after_per_key() {
    let dir = support::temp_dir("mesh-gateway-test", "limit");
    let ca = TestCa::new("test.example");
    let backend = start_backend(&ca).await;
    // 0.01 per second: no token comes back during the test.
    let config = format!(
        "{}{}[rate_limit]\nper_second = 0.01\nburst = 2\nkey = \"header:x-api-key\"\n\n\
         [[routes]]\npath_prefix = \"/\"\nservice = \"orders\"\n",
        preamble(&dir, &ca),
        service("orders", backend),
    );
    let gw = start(&dir, "limit", &config).await;
    let alice = [("x-api-key", "alice")];
    for _ in 0..2 {
        let (status, _, body) = send(gw.public, "a", "/", &alice).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, headers, _) = send(gw.public, "a", "/", &alice).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = headers[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=100).contains(&retry_after), "{retry_after}");
    assert!(headers.contains_key("x-request-id"));
    // Another key has its own bucket.
    let (status, _, _) = send(gw.public, "a", "/", &[("x-api-key", "bob")]).await;
    assert_eq!(status, StatusCode::OK);
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminates_tls_with_an_ordinary_server_certificate() {
    let dir = support::temp_dir("mesh-gateway-test", "tls");
    let ca = TestCa::new("test.example");
    let backend = start_backend(&ca).await;
    // An ordinary server certificate: a DNS name, no SPIFFE URI.
    let server_cert = ca
        .svid("/unused")
        .uri_sans(Vec::<String>::new())
        .dns_sans(["gateway.test"])
        .build();
    std::fs::write(dir.join("server-cert.pem"), server_cert.chain_pem()).unwrap();
    std::fs::write(dir.join("server-key.pem"), server_cert.key_pem()).unwrap();
    let config = format!(
        "{}[tls]\ncert = \"server-cert.pem\"\nkey = \"server-key.pem\"\n\n{}\
         [[routes]]\npath_prefix = \"/\"\nservice = \"orders\"\n",
        preamble(&dir, &ca),
        service("orders", backend),
    );
    let gw = start(&dir, "tls", &config).await;

    // A client that verifies the gateway by DNS name against the CA's root, as a browser would.
    let mut roots = rustls::RootCertStore::empty();
    for root in ca.roots() {
        roots.add(root).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(mesh_tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let connector = tower::service_fn(move |endpoint: Endpoint| {
        let tls = tls.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(endpoint.addr()).await?;
            let name = rustls_pki_types::ServerName::try_from("gateway.test")
                .map_err(std::io::Error::other)?;
            tls.connect(name, tcp).await
        }
    });
    let client =
        HttpClient::<Body>::new(Endpoint::new(gw.public), connector, ClientConfig::default());
    let req = Request::get("/over-tls")
        .header(HOST, "gateway.test")
        .body(Body::empty())
        .unwrap();
    let res = client.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("x-request-id"));
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).starts_with("path /over-tls"));

    // A plaintext request to the TLS port gets no HTTP answer.
    let plain = HttpClient::<Body>::new(
        Endpoint::new(gw.public),
        TcpConnector::new(),
        ClientConfig::default(),
    );
    let req = Request::get("/")
        .header(HOST, "a")
        .body(Body::empty())
        .unwrap();
    assert!(plain.oneshot(req).await.is_err());
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_trace_id_reaches_the_backend() {
    let dir = support::temp_dir("mesh-gateway-test", "trace");
    let ca = TestCa::new("test.example");
    let backend = start_backend(&ca).await;
    let config = format!(
        "{}{}[[routes]]\npath_prefix = \"/\"\nservice = \"orders\"\n",
        preamble(&dir, &ca),
        service("orders", backend),
    );
    let gw = start(&dir, "trace", &config).await;
    let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, _, body) = send(gw.public, "a", "/t", &[("traceparent", sent)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = body
        .lines()
        .find_map(|line| line.strip_prefix("traceparent: "))
        .unwrap_or_else(|| panic!("no traceparent reached the backend: {body}"));
    let fields: Vec<&str> = seen.split('-').collect();
    assert_eq!(fields.len(), 4, "{seen}");
    assert_eq!(
        fields[1], "4bf92f3577b34da6a3ce929d0e0e4736",
        "same trace id"
    );
    assert_ne!(
        fields[2], "00f067aa0ba902b7",
        "the gateway's own span is the parent"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Routing decides on the normalised target and the backend gets that same target: an
/// absolute-form URI naming the internal host while `Host` names the public one is refused (it
/// used to route to the internal route while the backend saw the public `Host`), as are two
/// `Host` headers; dot segments cannot climb out of a route's prefix; `CONNECT` gets 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_decides_on_one_host_and_the_normalised_path() {
    let dir = support::temp_dir("mesh-gateway-test", "target");
    let ca = TestCa::new("test.example");
    let backend = start_backend(&ca).await;
    let config = format!(
        "{}{}{}\
         [[routes]]\nhost = \"internal.example\"\npath_prefix = \"/\"\nservice = \"internal\"\n\
         add_headers = {{ \"x-route\" = \"internal\" }}\n\n\
         [[routes]]\nhost = \"public.example\"\npath_prefix = \"/public\"\nservice = \"public\"\n\
         add_headers = {{ \"x-route\" = \"public\" }}\n",
        preamble(&dir, &ca),
        service("internal", backend),
        service("public", backend),
    );
    let gw = start(&dir, "gw", &config).await;
    let at = |head: &str| support::raw_http1(gw.public, head.to_owned());

    let (status, body) = at("GET /public/a HTTP/1.1\r\nHost: Public.Example.\r\n").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("x-route: public"), "{body}");
    let (status, body) = at("GET /public/../internal HTTP/1.1\r\nHost: public.example\r\n").await;
    assert_eq!(
        status, 404,
        "a dot segment must not leave the route's prefix: {body}"
    );
    let (status, body) = at("GET /x/..//public/b HTTP/1.1\r\nHost: public.example\r\n").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("path /public/b\n"), "{body}");

    let (status, body) =
        at("GET http://internal.example/ HTTP/1.1\r\nHost: public.example\r\n").await;
    assert_eq!(status, 400, "absolute-form URI naming another host: {body}");
    let (status, body) =
        at("GET /public/a HTTP/1.1\r\nHost: public.example\r\nHost: internal.example\r\n").await;
    assert_eq!(status, 400, "two Host headers: {body}");
    let (status, _) =
        at("CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n").await;
    assert_eq!(status, 405);
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}
