//! HTTP/1.1 attacks on the `mesh-sidecar` binary's outbound listener, kept as tests: malformed
//! requests (`400`), a target too long (`414`), a head too large (`431`), CL.TE and TE.CL request
//! smuggling (one request reaches the backend), and the slow-client bounds: a head still incomplete
//! after 30 s, a TLS handshake still incomplete after 10 s.
//!
//! After every attack the process is still running and a normal request is served.
//!
//! The slow-client bounds are mesh-core's `ServerConfig` defaults, and the sidecar's `[server]`
//! table has no key for either; waiting 30 s of real time per test would make the suite slow. So
//! the tests check that the configuration the binary builds its listeners from keeps those
//! defaults, and run a mesh-core server with that very configuration on a paused clock, where the
//! bound is observed to the millisecond.

mod support;

use std::net::SocketAddr;

use http::StatusCode;
use support::attack::{self, BackendLog, assert_still_serving, exchange, statuses};

/// A sidecar with the plaintext service `web` in front of a recording backend, heads allowed up
/// to 128 KiB so that a target of 70 000 bytes fits and is refused for its own length (`414`).
async fn sidecar_with_web(tag: &str) -> (support::Sidecar, BackendLog, std::path::PathBuf) {
    let dir = support::temp_dir("mesh-attack-h1", tag);
    let (backend, log) = attack::recording_backend(|_| StatusCode::OK).await;
    let config = attack::sidecar_config(
        &dir,
        &format!(
            "{}[server]\nmax_request_head_bytes = 131072\n",
            attack::plaintext_service("web", backend, "")
        ),
    );
    (attack::start(&dir, &config).await, log, dir)
}

/// Sends `raw` on its own connection and asserts exactly one answer, with `status`, and that the
/// connection was closed after it.
async fn refused(addr: SocketAddr, what: &str, raw: &[u8], status: u16) {
    let answer = exchange(addr, raw).await;
    assert_eq!(statuses(&answer), [status], "{what}: {answer:.300}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_and_never_forwarded() {
    let (mut sidecar, log, dir) = sidecar_with_web("malformed").await;
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: web\r\n\r\n", "a".repeat(70_000));
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: web\r\nX-Big: {}\r\n\r\n",
        "b".repeat(140_000)
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: web\r\n{}\r\n",
        (0..120)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: [(&str, &[u8], u16); 10] = [
        (
            "a header line without a colon",
            b"GET / HTTP/1.1\r\nHost: web\r\nno colon\r\n\r\n",
            400,
        ),
        (
            "a control character in a header name",
            b"GET / HTTP/1.1\r\nHost: web\r\nX-\x01: v\r\n\r\n",
            400,
        ),
        (
            "a negative Content-Length",
            b"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: -1\r\n\r\n",
            400,
        ),
        (
            "a request line without a version",
            b"GET /\r\nHost: web\r\n\r\n",
            400,
        ),
        (
            "garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            400,
        ),
        (
            "a space before the colon",
            b"GET / HTTP/1.1\r\nHost : web\r\n\r\n",
            400,
        ),
        (
            "two different hosts",
            b"GET / HTTP/1.1\r\nHost: web\r\nHost: evil\r\nConnection: close\r\n\r\n",
            400,
        ),
        ("a target of 70 000 bytes", long_target.as_bytes(), 414),
        ("a head of 140 000 bytes", big_header.as_bytes(), 431),
        ("120 header fields", many_headers.as_bytes(), 431),
    ];
    for (what, raw, status) in cases {
        refused(sidecar.outbound, what, raw, status).await;
        assert!(
            sidecar.child.0.try_wait().unwrap().is_none(),
            "{what}: the sidecar exited"
        );
    }
    assert_eq!(log.count(), 0, "a refused request reached the backend");
    assert_still_serving(&mut sidecar, "web").await;
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggled_requests_never_reach_the_backend() {
    let (mut sidecar, log, dir) = sidecar_with_web("smuggling").await;
    // CL.TE: a front end that trusts Content-Length forwards the whole body, a back end that
    // trusts chunked sees `GET /smuggled` as a second request.
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: web\r\n\r\n";
    let cl_te = format!(
        "POST /first HTTP/1.1\r\nHost: web\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
        5 + smuggled.len()
    );
    // TE.CL: the front end trusts chunked, a back end that trusts Content-Length: 4 reads `5c\r\n`
    // and takes the chunk's data for a request.
    let inner = "GET /smuggled HTTP/1.1\r\nHost: web\r\nContent-Length: 10\r\n\r\nx=";
    let te_cl = format!(
        "POST /first HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
        inner.len()
    );
    // Both framings present: chunked wins, Content-Length is dropped, and the connection closes
    // after the one answer, so nothing behind the body is read as a request.
    for (what, raw, body_len) in [("CL.TE", &cl_te, 0), ("TE.CL", &te_cl, inner.len())] {
        let before = log.count();
        let answer = exchange(sidecar.outbound, raw.as_bytes()).await;
        assert_eq!(statuses(&answer), [200], "{what}: {answer:.300}");
        let seen = log.all();
        assert_eq!(seen.len(), before + 1, "{what}: {seen:?}");
        let forwarded = &seen[before];
        assert_eq!(
            (forwarded.method.as_str(), forwarded.path.as_str()),
            ("POST", "/first"),
            "{what}"
        );
        assert_eq!(forwarded.body_len, body_len, "{what}");
    }

    // Framings that cannot be told apart are refused outright.
    let obfuscated: [(&str, &[u8]); 4] = [
        ("chunked, then identity", b"POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"),
        ("an unknown coding", b"POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
        ("two different lengths", b"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ("chunked in HTTP/1.0", b"POST / HTTP/1.0\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ];
    let before = log.count();
    for (what, raw) in obfuscated {
        refused(sidecar.outbound, what, raw, 400).await;
    }
    assert_eq!(log.count(), before, "{:?}", log.all());
    assert!(log.all().iter().all(|seen| seen.path != "/smuggled"));
    assert_still_serving(&mut sidecar, "web").await;
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

mod slow_clients {
    //! The binary's slow-client bounds, on a paused clock.

    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::time::Duration;

    use http::{Request, Response, StatusCode};
    use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
    use mesh_core::server::{Acceptor, PlainAcceptor, Server, ServerConfig, ServerStats};
    use mesh_core::{Body, Endpoint};
    use mesh_examples::config::Sidecar;
    use mesh_examples::runtime::outbound_server_config;
    use mesh_tls::TlsConnector;
    use mesh_tls::test_ca::TestCa;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::Instant;
    use tower::ServiceExt;

    use crate::support;

    /// The configuration the binary would run with: a `[server]` table that sets every key it
    /// has, so a key that reached the slow-client bounds by mistake would show. The idle timeout
    /// is longer than the head bound here: a connection still reading its first head has no
    /// request in progress, so a shorter idle timeout would close it first (by default both
    /// are 30 s).
    fn sidecar_config() -> (Sidecar, std::path::PathBuf) {
        let dir = support::temp_dir("mesh-attack-h1", "slow");
        let text = support::attack::sidecar_config(
            &dir,
            "[server]\nmax_connections = 100\nmax_connections_per_peer = 10\nidle_timeout_ms = 60000\n\
             write_stall_timeout_ms = 60000\nmax_request_head_bytes = 16384\n",
        );
        let config = mesh_examples::config::parse(&text, &dir).unwrap();
        (config, dir)
    }

    #[test]
    fn the_binary_keeps_mesh_core_s_slow_client_bounds() {
        let (config, dir) = sidecar_config();
        let defaults = ServerConfig::default();
        for (listener, server) in [
            ("inbound", config.server.clone()),
            ("outbound", outbound_server_config(config.server.clone())),
        ] {
            assert_eq!(
                server.get_header_read_timeout(),
                Some(Duration::from_secs(30)),
                "{listener}"
            );
            assert_eq!(
                server.get_handshake_timeout(),
                Duration::from_secs(10),
                "{listener}"
            );
            assert_eq!(
                server.get_header_read_timeout(),
                defaults.get_header_read_timeout()
            );
            assert_eq!(
                server.get_handshake_timeout(),
                defaults.get_handshake_timeout()
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Serves `200` on 127.0.0.1 with `config` and `acceptor`; returns the address and counters.
    async fn serve<A: Acceptor>(config: ServerConfig, acceptor: A) -> (SocketAddr, ServerStats) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::new(listener).acceptor(acceptor).config(config);
        let addr = server.local_addr().unwrap();
        let stats = server.stats();
        let ok = tower::service_fn(|_req: Request<hyper::body::Incoming>| async {
            Ok::<_, Infallible>(Response::new(Body::from("ok")))
        });
        tokio::spawn(server.serve(ok));
        (addr, stats)
    }

    /// Connects to `addr`; returns the stream once the server has accepted it, with that
    /// instant, from which the server's deadlines count. On the paused clock the runtime moves
    /// time forward whenever no task is ready, even while loopback packets are still on their way
    /// (under load the kernel delivers them late): yielding until the server counts the
    /// connection keeps a task ready, so no time passes in between.
    async fn connect_accepted(addr: SocketAddr, stats: &ServerStats) -> (TcpStream, Instant) {
        let before = stats.accepted_connections();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let waiting = std::time::Instant::now();
        while stats.accepted_connections() == before {
            assert!(
                waiting.elapsed() < Duration::from_secs(30),
                "the server never accepted the connection"
            );
            tokio::task::yield_now().await;
        }
        (tcp, Instant::now())
    }

    /// Reads until the server closes `tcp`; returns what it sent.
    async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
        let mut seen = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(120), tcp.read_to_end(&mut seen))
            .await
            .expect("the server never closed the connection");
        seen
    }

    #[tokio::test(start_paused = true)]
    async fn a_slowloris_head_is_closed_at_30_s() {
        let (config, dir) = sidecar_config();
        let (addr, stats) =
            serve(outbound_server_config(config.server), PlainAcceptor::new()).await;
        let (tcp, start) = connect_accepted(addr, &stats).await;
        let (mut read, mut write) = tcp.into_split();
        // A header line every 5 s: each one is progress, none completes the head.
        let trickle = tokio::spawn(async move {
            write.write_all(b"GET / HTTP/1.1\r\nHost: web\r\n").await?;
            for i in 0.. {
                tokio::time::sleep(Duration::from_secs(5)).await;
                write
                    .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                    .await?;
            }
            Ok::<_, std::io::Error>(())
        });
        let mut seen = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(120), read.read_to_end(&mut seen))
            .await
            .expect("the server never closed the slow connection");
        let closed_after = start.elapsed();
        trickle.abort();
        assert!(
            closed_after >= Duration::from_secs(30) && closed_after < Duration::from_secs(31),
            "closed after {closed_after:?}"
        );
        assert!(
            !String::from_utf8_lossy(&seen).contains(" 200 "),
            "the slow head was served"
        );

        // A prompt client is served right after.
        let client = HttpClient::<Body>::new(
            Endpoint::new(addr),
            TcpConnector::new(),
            ClientConfig::default(),
        );
        let req = Request::get("http://web/").body(Body::empty()).unwrap();
        assert_eq!(client.oneshot(req).await.unwrap().status(), StatusCode::OK);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_tls_handshake_is_closed_at_10_s() {
        let ca = TestCa::new("test.example");
        // The listener settings come from the binary's configuration; the SVIDs from `ca`.
        let (config, dir) = sidecar_config();
        let bundles = TestCa::bundles([&ca]);
        let acceptor = mesh_tls::TlsAcceptor::new(ca.issue("/b").svid(), bundles.clone());
        let (addr, stats) = serve(config.server, acceptor).await;

        // Silent after connecting, and stalled halfway through a ClientHello: both are cut at
        // the handshake bound.
        for prefix in [&b""[..], b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"] {
            let (mut tcp, start) = connect_accepted(addr, &stats).await;
            tcp.write_all(prefix).await.unwrap();
            until_closed(&mut tcp).await;
            let closed_after = start.elapsed();
            assert!(
                closed_after >= Duration::from_secs(10) && closed_after < Duration::from_secs(11),
                "closed after {closed_after:?}"
            );
        }
        assert_eq!(stats.handshake_timeouts(), 2);

        // A client with a valid SVID is served right after.
        let connector = TlsConnector::new(ca.issue("/a").svid(), bundles);
        let endpoint = Endpoint::builder(addr)
            .identity("spiffe://test.example/b")
            .build()
            .unwrap();
        let client = HttpClient::<Body>::new(endpoint, connector, ClientConfig::default());
        let req = Request::get("http://b/").body(Body::empty()).unwrap();
        assert_eq!(client.oneshot(req).await.unwrap().status(), StatusCode::OK);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
