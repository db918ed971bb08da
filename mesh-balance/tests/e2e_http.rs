//! The balancer over real sockets: mesh-core HTTP clients (one per endpoint) to mesh-core servers on
//! 127.0.0.1, endpoints managed at run time through a `DiscoverHandle`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use mesh_balance::discover::DiscoverHandle;
use mesh_balance::{Balance, BalanceConfig};
use mesh_core::client::{ClientConfig, HttpClient, Protocol, TcpConnector};
use mesh_core::server::Server;
use mesh_core::{Endpoint, EndpointKey};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tower::ServiceExt;

/// A backend answering its own address; requests to `/hold` wait until `release` is notified.
struct Backend {
    addr: SocketAddr,
    release: Arc<Notify>,
}

async fn backend(held: mpsc::UnboundedSender<SocketAddr>) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let service = tower::service_fn(move |req: Request<Incoming>| {
        let gate = gate.clone();
        let held = held.clone();
        async move {
            if req.uri().path() == "/hold" {
                let released = gate.notified();
                held.send(addr).unwrap();
                released.await;
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(addr.to_string()))))
        }
    });
    tokio::spawn(server.serve(service));
    Backend { addr, release }
}

/// Sends one request through `balance` and returns the answering backend's address.
async fn send<S, B>(balance: &S, path: &str) -> SocketAddr
where
    S: tower::Service<Request<Empty<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let req = Request::get(path).body(Empty::new()).unwrap();
    let res = balance.clone().oneshot(req).await.expect("a response");
    let body = res.into_body().collect().await.expect("a body").to_bytes();
    std::str::from_utf8(&body).unwrap().parse().unwrap()
}

fn client(endpoint: &Endpoint) -> HttpClient<Empty<Bytes>> {
    // Alternate protocols so both HTTP/1.1 pools and HTTP/2 connections sit under the balancer.
    let protocol = if endpoint.addr().port().is_multiple_of(2) {
        Protocol::Http1
    } else {
        Protocol::Http2
    };
    let config = ClientConfig::default().protocol(protocol);
    HttpClient::new(endpoint.clone(), TcpConnector::new(), config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spreads_load_and_finishes_in_flight_requests_of_removed_endpoints() {
    let (held_tx, mut held_rx) = mpsc::unbounded_channel();
    let mut backends = Vec::new();
    for _ in 0..3 {
        backends.push(backend(held_tx.clone()).await);
    }
    let handle: DiscoverHandle = backends.iter().map(|b| Endpoint::new(b.addr)).collect();
    let balance = Balance::new(handle.discover(), client, BalanceConfig::default().seed(11))
        .expect("valid config");

    // Every backend takes part.
    let mut hits: HashMap<SocketAddr, usize> = HashMap::new();
    for _ in 0..90 {
        *hits.entry(send(&balance, "/").await).or_default() += 1;
    }
    assert_eq!(hits.len(), 3, "all three backends answered: {hits:?}");
    assert_eq!(hits.values().sum::<usize>(), 90);

    // Hold one request on some backend, then remove that backend from discovery.
    let in_flight = tokio::spawn({
        let balance = balance.clone();
        async move { send(&balance, "/hold").await }
    });
    let holder = held_rx.recv().await.expect("a backend holds the request");
    assert!(handle.remove(&EndpointKey(holder)).is_some());

    // New requests avoid the removed endpoint while its request is still in flight.
    for _ in 0..30 {
        assert_ne!(send(&balance, "/").await, holder);
    }
    assert!(!in_flight.is_finished());

    // Released, the held request completes normally on the removed endpoint.
    let released = backends.iter().find(|b| b.addr == holder).unwrap();
    released.release.notify_one();
    assert_eq!(in_flight.await.unwrap(), holder);
    assert_eq!(balance.status().endpoints, 2);
}
