//! End-to-end tests of the mesh through the real `mesh-sidecar` binary: an app's request goes to
//! the outbound listener of sidecar A, over mTLS to the inbound listener of a sidecar B, and on to
//! the backend behind B. Checked here: trace context crosses both sidecars, a peer sidecar or a
//! backend process killed mid-run leaves no request without a response, the documented metric
//! names appear, and a gRPC unary call keeps its trailers.
//!
//! Every listener is bound on `127.0.0.1:0`; each sidecar prints the addresses it bound on its
//! `ready` line, so there is no race for free ports.

mod support;

use support::Sidecar;

use std::convert::Infallible;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use mesh_core::client::{ClientConfig, HttpClient, Protocol, TcpConnector};
use mesh_core::error::MESH_ERROR_HEADER;
use mesh_core::server::Server;
use mesh_core::{Body, Endpoint};
use mesh_tls::test_ca::TestCa;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Upper bound of any single request in these tests: a request still pending after it has hung.
const REQUEST_DEADLINE: Duration = Duration::from_secs(20);

/// `[listeners]` on free loopback ports and `[app]` at `app` speaking `protocol`.
fn listeners(app: SocketAddr, protocol: &str) -> String {
    format!(
        "[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[app]\naddress = \"{app}\"\nprotocol = \"{protocol}\"\n\n"
    )
}

/// Starts the binary on `config` (written as `dir/<name>.toml`) and waits for its `ready` line.
async fn start(dir: &Path, name: &str, config: &str) -> Sidecar {
    support::start_sidecar(&dir.join(format!("{name}.toml")), config).await
}

/// Sidecar B's configuration: in front of `app`, allowing every workload of the test CA.
fn b_config(dir: &Path, ca: &TestCa, name: &str, app: SocketAddr, protocol: &str) -> String {
    format!(
        "{}{}[[authorization.rules]]\naction = \"allow\"\ntrust_domains = [\"{}\"]\n",
        listeners(app, protocol),
        support::write_identity(dir, ca, name),
        ca.trust_domain()
    )
}

/// Sidecar A's configuration: one outbound service `orders` over the inbound listeners `peers`,
/// each expected to present `spiffe://<domain>/<peer name>`.
fn a_config(dir: &Path, ca: &TestCa, peers: &[(&str, SocketAddr)]) -> String {
    let endpoints: Vec<String> = peers
        .iter()
        .map(|(name, addr)| {
            format!(
                "{{ address = \"{addr}\", identity = \"spiffe://{}/{name}\" }}",
                ca.trust_domain()
            )
        })
        .collect();
    format!(
        "{}{}[services.orders]\nauthorities = [\"orders\"]\ndiscovery = {{ kind = \"static\", endpoints = [{}] }}\n",
        listeners("127.0.0.1:9".parse().unwrap(), "http1"),
        support::write_identity(dir, ca, "a"),
        endpoints.join(", ")
    )
}

/// Sidecars B1 and B2 in front of `app1` and `app2` (HTTP/1.1), and A whose `orders` service has
/// both as endpoints.
async fn two_peers(
    dir: &Path,
    ca: &TestCa,
    app1: SocketAddr,
    app2: SocketAddr,
) -> (Sidecar, Sidecar, Sidecar) {
    let b1 = start(dir, "b1", &b_config(dir, ca, "b1", app1, "http1")).await;
    let b2 = start(dir, "b2", &b_config(dir, ca, "b2", app2, "http1")).await;
    let peers = [("b1", b1.inbound), ("b2", b2.inbound)];
    let a = start(dir, "a", &a_config(dir, ca, &peers)).await;
    (a, b1, b2)
}

/// The local app behind a sidecar B: answers `200` with `<tag> traceparent=<the one it got>`.
async fn start_backend(tag: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let app = tower::service_fn(move |req: Request<hyper::body::Incoming>| async move {
        let traceparent = req
            .headers()
            .get("traceparent")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = format!("{tag} traceparent={traceparent}");
        Ok::<_, Infallible>(Response::new(Body::from(body)))
    });
    tokio::spawn(server.serve(app));
    addr
}

/// A plaintext client to `addr` speaking `protocol` (HTTP/2 with prior knowledge).
fn client(addr: SocketAddr, protocol: Protocol) -> HttpClient<Body> {
    HttpClient::<Body>::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default().protocol(protocol),
    )
}

/// One response: status, headers, and the body and trailers as far as they arrived.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    trailers: Option<HeaderMap>,
    /// Why the body stopped before its end, if it did (the head had arrived).
    body_error: Option<String>,
}

/// Sends `req` to `addr` and reads the response; `Err` when no response head arrives (a
/// transport failure) or when [`REQUEST_DEADLINE`] passes.
async fn send_partial(
    addr: SocketAddr,
    protocol: Protocol,
    req: Request<Body>,
) -> Result<Answer, String> {
    let exchange = async move {
        let res = client(addr, protocol)
            .oneshot(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let (parts, mut body) = res.into_parts();
        let mut answer = Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::new(),
            trailers: None,
            body_error: None,
        };
        let mut data = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(bytes) => data.extend_from_slice(&bytes),
                    Err(frame) => answer.trailers = frame.into_trailers().ok(),
                },
                Err(e) => {
                    answer.body_error = Some(e.to_string());
                    break;
                }
            }
        }
        answer.body = String::from_utf8_lossy(&data).into_owned();
        Ok(answer)
    };
    tokio::time::timeout(REQUEST_DEADLINE, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no response within {REQUEST_DEADLINE:?}")))
}

/// As [`send_partial`], and the body must have arrived whole.
async fn send(addr: SocketAddr, protocol: Protocol, req: Request<Body>) -> Result<Answer, String> {
    let answer = send_partial(addr, protocol, req).await?;
    match answer.body_error {
        Some(e) => Err(format!("body failed after {}: {e}", answer.status)),
        None => Ok(answer),
    }
}

/// A plaintext GET of `path` addressed to `host`.
fn get(host: &str, path: &str) -> Request<Body> {
    Request::get(format!("http://{host}{path}"))
        .header(HOST, host)
        .body(Body::empty())
        .unwrap()
}

/// The trace id and parent id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
fn trace_parts(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.trim().split('-').collect();
    assert_eq!(parts.len(), 4, "not a traceparent: {traceparent:?}");
    assert_eq!(parts[1].len(), 32, "{traceparent:?}");
    assert_eq!(parts[2].len(), 16, "{traceparent:?}");
    (parts[1].to_owned(), parts[2].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_keeps_its_trace_id_through_two_sidecars() {
    let dir = support::temp_dir("mesh-e2e-test", "trace");
    let ca = TestCa::new("test.example");
    let backend = start_backend("backend").await;
    let b = start(&dir, "b", &b_config(&dir, &ca, "b", backend, "http1")).await;
    let a = start(&dir, "a", &a_config(&dir, &ca, &[("b", b.inbound)])).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let mut req = get("orders", "/trace");
    req.headers_mut().insert(
        "traceparent",
        HeaderValue::from_str(&format!("00-{trace_id}-{parent_id}-01")).unwrap(),
    );
    let answer = send(a.outbound, Protocol::Http1, req).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let received = answer
        .body
        .strip_prefix("backend traceparent=")
        .unwrap_or_else(|| panic!("unexpected body {:?}", answer.body));
    let (got_trace, got_parent) = trace_parts(received);
    assert_eq!(got_trace, trace_id, "the trace id must survive both hops");
    assert_ne!(
        got_parent, parent_id,
        "the sidecars' spans must become the parent"
    );
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A peer *sidecar* dies (compare with the backend kill below, where B2 stays up and answers for
/// its dead app). Requests the dead peer had not answered yet are retried on the other; but a
/// response whose head the peer had already relayed can only be cut: A streams response bodies
/// without buffering them, so once the head went on to the client its status can no longer change,
/// and the peer's death between the head and the end of the body ends the stream with an error (as
/// with any streaming proxy). Such cut bodies are counted and bounded by the requests in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_mid_run_leaves_no_request_without_a_response() {
    const REQUESTS: usize = 60;
    const WORKERS: usize = 4;
    const KILL_AFTER: usize = 20;

    let dir = support::temp_dir("mesh-e2e-test", "kill");
    let ca = TestCa::new("test.example");
    let backend1 = start_backend("one").await;
    let backend2 = start_backend("two").await;
    let (a, b1, b2) = two_peers(&dir, &ca, backend1, backend2).await;

    // Workers share one counter of finished requests; the one finishing request KILL_AFTER
    // signals the main task, which kills b2 while the others keep sending.
    let done = Arc::new(AtomicUsize::new(0));
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
    let kill_tx = Arc::new(std::sync::Mutex::new(Some(kill_tx)));
    let outbound = a.outbound;
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let done = done.clone();
        let kill_tx = kill_tx.clone();
        workers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..REQUESTS / WORKERS {
                let path = format!("/w{worker}/r{i}");
                let answer = send_partial(outbound, Protocol::Http1, get("orders", &path)).await;
                answers.push((path, answer));
                if done.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER
                    && let Some(tx) = kill_tx.lock().unwrap().take()
                {
                    let _ = tx.send(());
                }
            }
            answers
        }));
    }
    kill_rx.await.unwrap();
    let mut b2 = b2;
    b2.child.kill();

    let mut seen = [0_usize; 2];
    let mut mesh_errors = 0;
    let mut cut = 0;
    for worker in workers {
        for (path, answer) in worker.await.unwrap() {
            let answer = answer.unwrap_or_else(|e| panic!("{path}: {e}"));
            if let Some(e) = &answer.body_error {
                // The peer died after its response head had been relayed: the status can no
                // longer change, so the stream is cut (as any proxy must). A response all the
                // same, and only possible for a request the killed peer was answering.
                assert!(answer.status.is_success(), "{path}: {e}");
                cut += 1;
            } else if answer.status.is_success() {
                if answer.body.starts_with("one ") {
                    seen[0] += 1;
                } else if answer.body.starts_with("two ") {
                    seen[1] += 1;
                } else {
                    panic!("{path}: unexpected body {:?}", answer.body);
                }
            } else {
                assert!(
                    answer.status.is_server_error()
                        && answer.headers.contains_key(MESH_ERROR_HEADER),
                    "{path}: {} {:?} {:?}",
                    answer.status,
                    answer.headers,
                    answer.body
                );
                mesh_errors += 1;
            }
        }
    }
    assert_eq!(seen[0] + seen[1] + mesh_errors + cut, REQUESTS);
    assert!(
        cut <= WORKERS,
        "more cut streams than requests in flight: {cut}"
    );
    // Which peer served the requests before the kill is up to the balancer; the survivor must
    // have served some after it.
    assert!(seen[0] > 0, "the surviving peer served nothing: {seen:?}");

    // After the kill, the surviving peer still answers.
    let answer = send(outbound, Protocol::Http1, get("orders", "/after"))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    drop((a, b1, b2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sum of every sample of `name` (a counter, over all its label sets) in `admin`'s `/metrics`.
async fn metric_sum(admin: SocketAddr, name: &str) -> f64 {
    let answer = send(admin, Protocol::Http1, get("admin", "/metrics"))
        .await
        .unwrap();
    answer
        .body
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = if rest.starts_with('{') {
                rest.rsplit_once("} ")?.1
            } else {
                rest.strip_prefix(' ')?
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// A *backend process* dies mid-run behind peer B2 (`SIGKILL`, requests in flight there), while
/// workers send HTTP/1.1 and HTTP/2 GETs through A to B1 and B2. Strict: every request gets either
/// a `200` with the whole body of a backend, or a 5xx carrying `mesh-error`; no transport error, no
/// cut body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_run_leaves_no_request_without_a_complete_answer() {
    const WORKERS: usize = 6;
    /// Workers below this index speak HTTP/1.1 to A, the others HTTP/2.
    const HTTP1_WORKERS: usize = 4;
    const PER_WORKER: usize = 25;
    const KILL_AFTER: usize = 40;

    let dir = support::temp_dir("mesh-e2e-test", "backend-kill");
    let ca = TestCa::new("test.example");
    // A small delay keeps requests in flight at the backends when one is killed.
    let (_backend1, app1) = support::spawn_backend("one", 15).await;
    let (mut backend2, app2) = support::spawn_backend("two", 15).await;
    let (a, b1, b2) = two_peers(&dir, &ca, app1, app2).await;

    let done = Arc::new(AtomicUsize::new(0));
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
    let kill_tx = Arc::new(std::sync::Mutex::new(Some(kill_tx)));
    let outbound = a.outbound;
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let done = done.clone();
        let kill_tx = kill_tx.clone();
        let protocol = if worker < HTTP1_WORKERS {
            Protocol::Http1
        } else {
            Protocol::Http2
        };
        workers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..PER_WORKER {
                let path = format!("/w{worker}/r{i}");
                let answer = send_partial(outbound, protocol, get("orders", &path)).await;
                answers.push((path, answer));
                if done.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER
                    && let Some(tx) = kill_tx.lock().unwrap().take()
                {
                    let _ = tx.send(());
                }
            }
            answers
        }));
    }
    kill_rx.await.unwrap();
    // SIGKILL: the backend's connections are reset, requests in flight there get no answer.
    backend2.kill();

    let (mut from_one, mut from_two, mut mesh_errors) = (0, 0, 0);
    for worker in workers {
        for (path, answer) in worker.await.unwrap() {
            // No transport error, no truncated body: every request got a complete answer.
            let answer = answer.unwrap_or_else(|e| panic!("{path}: no answer: {e}"));
            if let Some(e) = &answer.body_error {
                panic!("{path}: body cut after {}: {e}", answer.status);
            }
            if answer.status == StatusCode::OK {
                let backend = answer.body.split(' ').next().unwrap_or("");
                assert_eq!(
                    answer.body,
                    format!("{backend} {path}\n"),
                    "{path}: not a whole answer of a backend"
                );
                match backend {
                    "one" => from_one += 1,
                    "two" => from_two += 1,
                    _ => panic!("{path}: unexpected body {:?}", answer.body),
                }
            } else {
                assert!(
                    answer.status.is_server_error()
                        && answer.headers.contains_key(MESH_ERROR_HEADER),
                    "{path}: {} {:?} {:?}",
                    answer.status,
                    answer.headers,
                    answer.body
                );
                eprintln!(
                    "{path}: {} mesh-error={:?}",
                    answer.status, answer.headers[MESH_ERROR_HEADER]
                );
                mesh_errors += 1;
            }
        }
    }
    assert_eq!(from_one + from_two + mesh_errors, WORKERS * PER_WORKER);
    assert!(from_one > 0, "the live backend served nothing");
    // What B2's inbound could not get from its dead app (connection reset or refused) it answered
    // with a 502 + `mesh-error`; A retried those GETs, and outlier ejection took B2 out of rotation.
    // B2 keeps failing until it is ejected, so retries did happen.
    let retries = metric_sum(a.admin, "mesh_retry_retries_total").await;
    eprintln!(
        "backend kill: one={from_one} two={from_two} mesh_errors={mesh_errors} retries={retries}"
    );
    assert!(retries >= 1.0, "no retry after the kill");

    // After the kill, requests still succeed (on the surviving backend).
    let answer = send(outbound, Protocol::Http1, get("orders", "/after"))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    drop((a, b1, b2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fetches `/metrics` from `admin` and asserts that every name in `names` has a sample line.
async fn assert_metrics(admin: SocketAddr, names: &[&str]) {
    let answer = send(admin, Protocol::Http1, get("admin", "/metrics"))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    for name in names {
        let sampled = answer.body.lines().any(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        });
        assert!(sampled, "no sample of {name} in\n{}", answer.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_documented_names_after_traffic() {
    let dir = support::temp_dir("mesh-e2e-test", "metrics");
    let ca = TestCa::new("test.example");
    let backend = start_backend("backend").await;
    let b = start(&dir, "b", &b_config(&dir, &ca, "b", backend, "http1")).await;
    let a = start(&dir, "a", &a_config(&dir, &ca, &[("b", b.inbound)])).await;
    for i in 0..3 {
        let answer = send(
            a.outbound,
            Protocol::Http1,
            get("orders", &format!("/m{i}")),
        )
        .await
        .unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }

    // The caller's side: mesh-observe's client instruments (OpenTelemetry HTTP semantic
    // conventions, as Prometheus names) and mesh-balance's.
    assert_metrics(
        a.admin,
        &[
            "http_client_request_duration_seconds_count",
            "http_client_request_duration_seconds_bucket",
            "http_client_active_requests",
            "mesh_balance_requests_total",
            "mesh_balance_endpoints",
            "mesh_balance_endpoint_in_flight",
        ],
    )
    .await;
    // The callee's side: mesh-observe's server instruments, mesh-tls's authorization decisions
    // and mesh-retry's inbound concurrency limit.
    assert_metrics(
        b.admin,
        &[
            "http_server_request_duration_seconds_count",
            "http_server_request_duration_seconds_bucket",
            "http_server_active_requests",
            "mesh_tls_authz_decisions_total",
            "mesh_limit_concurrency",
        ],
    )
    .await;
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A gRPC message on the wire: uncompressed flag, big-endian length, bytes.
fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// A gRPC app speaking HTTP/2: answers every unary call with its message reversed and
/// `grpc-status: 0` in the trailers.
async fn start_grpc_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let app = tower::service_fn(|req: Request<hyper::body::Incoming>| async move {
        let is_grpc = req
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let request = req.into_body().collect().await?.to_bytes();
        let mut trailers = HeaderMap::new();
        let message = match request.get(5..) {
            Some(message) if is_grpc && request[0] == 0 => {
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                message.iter().rev().copied().collect()
            }
            _ => {
                // INVALID_ARGUMENT: not a gRPC unary request.
                trailers.insert("grpc-status", HeaderValue::from_static("3"));
                Vec::new()
            }
        };
        let body = http_body_util::Full::new(bytes::Bytes::from(grpc_frame(&message)))
            .with_trailers(async move { Some(Ok(trailers)) });
        let mut res = Response::new(Body::new(body));
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        Ok::<_, hyper::Error>(res)
    });
    tokio::spawn(server.serve(app));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_unary_call_keeps_its_trailers_through_two_sidecars() {
    let dir = support::temp_dir("mesh-e2e-test", "grpc");
    let ca = TestCa::new("test.example");
    let backend = start_grpc_backend().await;
    let b = start(&dir, "b", &b_config(&dir, &ca, "b", backend, "http2")).await;
    let a = start(&dir, "a", &a_config(&dir, &ca, &[("b", b.inbound)])).await;

    let req = Request::post("http://orders/echo.Echo/Reverse")
        .header(CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(Body::from(grpc_frame(b"hello")))
        .unwrap();
    let answer = send(a.outbound, Protocol::Http2, req).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(
        answer.headers.get(CONTENT_TYPE).unwrap(),
        "application/grpc"
    );
    assert_eq!(answer.body.as_bytes(), grpc_frame(b"olleh").as_slice());
    let trailers = answer
        .trailers
        .expect("the trailers must cross both sidecars");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_an_unauthorized_spiffe_id_gets_403() {
    let dir = support::temp_dir("mesh-e2e-test", "authz");
    let ca = TestCa::new("test.example");
    let backend = start_backend("backend").await;
    // B admits only `/billing`: A (`/a`) passes mTLS but not authorization.
    let b_config = format!(
        "{}{}[[authorization.rules]]\naction = \"allow\"\npeers = [\"spiffe://{}/billing\"]\n",
        listeners(backend, "http1"),
        support::write_identity(&dir, &ca, "b"),
        ca.trust_domain()
    );
    let b = start(&dir, "b", &b_config).await;
    let a = start(&dir, "a", &a_config(&dir, &ca, &[("b", b.inbound)])).await;

    let answer = send(a.outbound, Protocol::Http1, get("orders", "/items"))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert!(
        !answer.body.starts_with("backend"),
        "the backend must not be reached: {}",
        answer.body
    );
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The local app behind B for the target tests: answers `200` with the path and host it got.
async fn start_echo_target_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let app = tower::service_fn(|req: Request<hyper::body::Incoming>| async move {
        let host = req.headers().get(HOST).and_then(|h| h.to_str().ok());
        let body = format!("path={} host={}", req.uri().path(), host.unwrap_or("-"));
        Ok::<_, Infallible>(Response::new(Body::from(body)))
    });
    tokio::spawn(server.serve(app));
    addr
}

/// The authorization bypasses reported against the sidecar, end to end (app → A's outbound →
/// mTLS → B's inbound → app): B denies `/admin` and the host `secret.example`, and A routes both
/// `orders` and `secret.example` to B. Every trick must be denied (403) or refused as ambiguous
/// (400) before the backend is reached, and an allowed request must reach the backend with the
/// normalised path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_host_tricks_do_not_bypass_authorization_through_two_sidecars() {
    let dir = support::temp_dir("mesh-e2e-test", "target");
    let ca = TestCa::new("test.example");
    let backend = start_echo_target_backend().await;
    let b_config = format!(
        "{}[[authorization.rules]]\naction = \"deny\"\npath_prefix = \"/admin\"\n\n[[authorization.rules]]\naction = \"deny\"\nhosts = [\"secret.example\"]\n",
        b_config(&dir, &ca, "b", backend, "http1"),
    );
    let b = start(&dir, "b", &b_config).await;
    let a_config = a_config(&dir, &ca, &[("b", b.inbound)]).replace(
        "authorities = [\"orders\"]",
        "authorities = [\"orders\", \"secret.example\"]",
    );
    let a = start(&dir, "a", &a_config).await;
    let at_a = |head: String| support::raw_http1(a.outbound, head);

    // Allowed, and the backend sees the normalised path.
    let (status, body) = at_a("GET /x/../public//page HTTP/1.1\r\nHost: orders\r\n".into()).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "path=/public/page host=orders")
    );

    for path in [
        "/admin/users",
        "/x/../admin/users",
        "//admin/users",
        "/./admin",
        "/%61dmin/users",
    ] {
        let (status, body) = at_a(format!("GET {path} HTTP/1.1\r\nHost: orders\r\n")).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, _) = at_a("GET /admin%2Fusers HTTP/1.1\r\nHost: orders\r\n".into()).await;
    assert_eq!(status, 400);

    for host in ["secret.example", "Secret.Example.", "secret.example."] {
        let (status, body) = at_a(format!("GET / HTTP/1.1\r\nHost: {host}\r\n")).await;
        assert_eq!(status, 403, "{host}: {body}");
    }
    let (status, _) =
        at_a("GET / HTTP/1.1\r\nHost: orders\r\nHost: secret.example\r\n".into()).await;
    assert_eq!(status, 400, "two Host headers");
    let (status, _) = at_a("GET http://orders/ HTTP/1.1\r\nHost: secret.example\r\n".into()).await;
    assert_eq!(status, 400, "absolute-form URI naming another host");
    let (status, _) = at_a("CONNECT orders:443 HTTP/1.1\r\nHost: orders:443\r\n".into()).await;
    assert_eq!(status, 405, "CONNECT");

    // HTTP/2: `:authority` and a `host` header naming different hosts.
    let h2 = Request::get("http://orders/")
        .header(HOST, "secret.example")
        .body(Body::empty())
        .unwrap();
    let answer = send(a.outbound, Protocol::Http2, h2).await.unwrap();
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);

    // The same tricks sent straight to B's inbound would need B's client certificate; B's own
    // normalisation is covered by mesh-tls's authorization tests.
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}
