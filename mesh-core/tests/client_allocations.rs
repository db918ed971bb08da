//! Heap allocations of the HTTP/1.1 client per request on a kept-alive connection, counted by a
//! counting global allocator. The counts are deterministic (the same path allocates the same way
//! every time), so they are asserted: a change that makes a pooled request allocate more fails
//! here. Timing lives in the benchmarks, never in tests.
//!
//! The peer is a hand-written HTTP/1.1 responder over a real loopback socket that allocates nothing
//! per request (a fixed read buffer, a static answer), so what is counted is the client: the request and
//! response heads, hyper's own per-request allocations, and what the pool adds (nothing: the send
//! future lives in a slot made once per connection, and the connection's own task returns it to the
//! pool).
//!
//! One test function only: the allocator counts every thread, and the test harness runs the
//! tests of one binary on several threads.

use std::alloc::System;

use http::Request;
use http_body_util::BodyExt;
use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
use mesh_core::{Body, Endpoint};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";

/// Accepts one connection and answers each request head (requests have no body) with `ANSWER`.
async fn respond_forever(listener: TcpListener) {
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut buffer = [0_u8; 4096];
    // How much of "\r\n\r\n" the bytes read so far end with: a head may span reads.
    let mut matched = 0;
    loop {
        let read = stream.read(&mut buffer).await.unwrap();
        if read == 0 {
            return;
        }
        for &byte in &buffer[..read] {
            matched = match (matched, byte) {
                (0 | 2, b'\r') => matched + 1,
                (1 | 3, b'\n') => matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if matched == 4 {
                stream.write_all(ANSWER).await.unwrap();
                matched = 0;
            }
        }
    }
}

/// One request: wait for a slot (so the previous connection is back in the pool), send, read the
/// body to its end.
async fn one_request(client: &mut HttpClient) {
    let request = Request::get("/").body(Body::empty()).unwrap();
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        len += frame.unwrap().data_ref().map_or(0, |data| data.len());
    }
    assert_eq!(len, 5);
}

#[test]
fn a_request_on_a_kept_alive_connection_allocates_only_what_hyper_needs() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    const REQUESTS: usize = 50;
    let (client, mut allocations) = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::from(listener.local_addr().unwrap());
        tokio::spawn(respond_forever(listener));
        // One connection: each request waits until the previous one's connection is back in the
        // pool, so the counted region covers whole cycles, returns included.
        let mut client = HttpClient::new(
            endpoint,
            TcpConnector::new(),
            ClientConfig::default().max_connections(1),
        );
        for _ in 0..10 {
            one_request(&mut client).await;
        }
        // Counted one request at a time (the list is made before, so recording allocates nothing).
        let mut counts = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            let region = Region::new(GLOBAL);
            one_request(&mut client).await;
            let change = region.change();
            counts.push(change.allocations + change.reallocations);
        }
        (client, counts)
    });
    assert_eq!(
        client.open_connections(),
        1,
        "every request on one connection"
    );
    allocations.sort_unstable();
    let median = allocations[REQUESTS / 2];
    eprintln!("allocations per pooled HTTP/1.1 request, sorted: {allocations:?}");
    // Measured: 13 per request. They are the request and response heads (the path, the `host`
    // header the client adds, the parsed response headers) and hyper's own (its response channel,
    // the response body's channel, the read buffer's bytes turned shared). Before the send future
    // lived in the connection's slot and the connection's task did the returns, it was 16: a boxed
    // send future, the return's shared state and a spawned task per request. The median is
    // asserted, not the total: now and then a single request pays a few more (the total over 50
    // requests has been seen from 651 to 655 between runs of the same build), where a change on
    // the per-request path moves every request's count.
    assert!(
        median <= 13,
        "median {median} allocations per request: {allocations:?}"
    );
}
