//! Hostile or broken upstreams behind the `mesh-sidecar` binary, kept as tests:
//!
//! - an upstream that accepts and never answers: the caller gets `504` with `mesh-error: timeout`
//!   once the service's `timeout_ms` has passed, not before;
//! - a 5 MB `POST` to an upstream that always fails with a retryable status: the body is larger
//!   than the retry layer's 64 KiB replay buffer, so it is sent exactly once (a small `POST` to
//!   the same upstream is retried, so the cap is what stops it);
//! - a `PUT` whose first attempt fails, answered `503` or cut by a reset halfway through its
//!   body: the retry carries the very same body, checked by a hash.
//!
//! After each, the process is still running and a normal request is served.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, StatusCode};
use mesh_core::Body;
use mesh_core::client::Protocol;
use support::attack::{self, assert_still_serving, fnv1a, send};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// An upstream that accepts connections and holds them open without reading or answering, until
/// the test ends.
async fn silent_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    addr
}

/// `n` bytes that are not all alike (so a body cut or shifted changes its hash).
fn payload(n: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_u32;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn with_body(method: &str, host: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(format!("http://{host}/upload"))
        .header(http::header::HOST, host)
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_answering_upstream_gets_504_at_the_timeout() {
    let dir = support::temp_dir("mesh-attack-upstream", "silent");
    let silent = silent_upstream().await;
    let (web, _log) = attack::recording_backend(|_| StatusCode::OK).await;
    let config = attack::sidecar_config(
        &dir,
        &format!(
            "{}{}",
            attack::plaintext_service("silent", silent, "timeout_ms = 400"),
            attack::plaintext_service("web", web, "")
        ),
    );
    let mut sidecar = attack::start(&dir, &config).await;
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let start = tokio::time::Instant::now();
        let (status, cause, body) =
            send(sidecar.outbound, protocol, attack::get("silent", "/hang")).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{protocol:?}: {body}");
        assert_eq!(cause.as_deref(), Some("timeout"), "{protocol:?}");
        assert!(
            start.elapsed() >= Duration::from_millis(400),
            "{protocol:?}: answered before the deadline"
        );
    }
    assert_still_serving(&mut sidecar, "web").await;
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mb_post_to_a_failing_upstream_is_sent_once() {
    let dir = support::temp_dir("mesh-attack-upstream", "big-post");
    let (failing, log) = attack::recording_backend(|_| StatusCode::SERVICE_UNAVAILABLE).await;
    let (web, _) = attack::recording_backend(|_| StatusCode::OK).await;
    // POST is retried here (as for an API with idempotency keys), so only the body's size can
    // keep it from being sent again.
    let config = attack::sidecar_config(
        &dir,
        &format!(
            "{}{}",
            attack::plaintext_service("failing", failing, "retry = { methods = [\"POST\"] }"),
            attack::plaintext_service("web", web, "")
        ),
    );
    let mut sidecar = attack::start(&dir, &config).await;

    // A small POST is retried up to the 3 attempts.
    let small = payload(1024);
    let (status, _, _) = send(
        sidecar.outbound,
        Protocol::Http1,
        with_body("POST", "failing", small.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(log.count(), 3, "{:?}", log.all());

    let big = payload(5 * 1024 * 1024);
    let (status, _, _) = send(
        sidecar.outbound,
        Protocol::Http1,
        with_body("POST", "failing", big.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let seen = log.all();
    assert_eq!(seen.len(), 4, "the 5 MB body was sent again: {seen:?}");
    assert_eq!(seen[3].body_len, big.len());
    assert_eq!(seen[3].body_hash, fnv1a(&big));
    assert_still_serving(&mut sidecar, "web").await;
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_put_carries_the_same_body() {
    let dir = support::temp_dir("mesh-attack-upstream", "put-replay");
    // The first attempt fails with a retryable status, every later one succeeds.
    let (once, log) = attack::recording_backend(|index| {
        if index == 0 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        }
    })
    .await;
    let config = attack::sidecar_config(&dir, &attack::plaintext_service("once", once, ""));
    let mut sidecar = attack::start(&dir, &config).await;

    // Just under the 64 KiB replay buffer.
    let body = payload(60 * 1024);
    let hash = fnv1a(&body);
    let (status, _, answer) = send(
        sidecar.outbound,
        Protocol::Http1,
        with_body("PUT", "once", body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, format!("PUT /upload {} {hash:016x}", body.len()));
    let seen = log.all();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for attempt in &seen {
        assert_eq!(
            (attempt.body_len, attempt.body_hash),
            (body.len(), hash),
            "{seen:?}"
        );
    }
    assert_still_serving(&mut sidecar, "once").await;
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An upstream in front of `backend` that resets its first connection once it has read `cut`
/// bytes of it, and relays every later connection to `backend`; returns its address and a
/// receiver of how many bytes the cut connection had carried.
async fn resetting_once(
    backend: SocketAddr,
    cut: usize,
) -> (SocketAddr, tokio::sync::oneshot::Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, reported) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut first, _) = listener.accept().await.unwrap();
        let mut read = 0;
        let mut chunk = [0u8; 4096];
        while read < cut {
            match first.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
        // SO_LINGER 0: closing sends a reset instead of a FIN.
        first.set_zero_linger().unwrap();
        drop(first);
        let _ = report.send(read);
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(backend).await?;
                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await
            });
        }
    });
    (addr, reported)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_cut_by_a_reset_is_replayed_whole() {
    let dir = support::temp_dir("mesh-attack-upstream", "put-reset");
    let (backend, log) = attack::recording_backend(|_| StatusCode::OK).await;
    let body = payload(60 * 1024);
    let (upstream, cut) = resetting_once(backend, 30 * 1024).await;
    let config = attack::sidecar_config(&dir, &attack::plaintext_service("cut", upstream, ""));
    let mut sidecar = attack::start(&dir, &config).await;

    let hash = fnv1a(&body);
    let (status, _, answer) = send(
        sidecar.outbound,
        Protocol::Http1,
        with_body("PUT", "cut", body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let carried = cut.await.unwrap();
    assert!(
        carried >= 30 * 1024,
        "the first attempt was cut after {carried} bytes, before its body"
    );
    // Only the retry reached the backend, with every byte of the body.
    assert_eq!(answer, format!("PUT /upload {} {hash:016x}", body.len()));
    assert_eq!(log.count(), 1, "{:?}", log.all());
    assert_still_serving(&mut sidecar, "cut").await;
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}
