//! `embedded-tonic`: a tonic gRPC client over the mesh's outbound layers, no sidecar.
//!
//! ```text
//! tonic::client::Grpc (unary SayHello, prost messages written by hand: no protoc)
//!   → mesh::Client, the facade's whole outbound stack as tonic's channel:
//!     ClientTraceLayer (spans, http.client.request.duration)
//!     → RequestTimeout (15 s)
//!     → RetryLayer (gRPC UNAVAILABLE is retried; WindowBudget caps retries at 20 % + 10/s)
//!     → Balance (P2C over PeakEWMA) over two loopback backends
//!     → per endpoint: circuit breaker → mesh-core HttpClient, HTTP/2 plaintext
//! ```
//!
//! The client is one builder call, and tonic takes it as it is: it accepts tonic's request body
//! and is always ready.
//!
//! The two backends are tonic's server-side codec behind mesh-core's `Server`. `steady` always
//! answers; `flaky` answers `UNAVAILABLE` to every other request it receives. The program makes
//! [`CALLS`] calls, prints each reply, then a summary line, and exits 0 when every call succeeded
//! (the retries hide the flaky backend's failures from the application), 1 otherwise.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::uri::PathAndQuery;
use http::{Request, Uri};
use hyper::body::Incoming;
use mesh_core::BoxError;
use mesh_core::client::{ClientConfig, Protocol};
use mesh_core::server::Server;
use mesh_retry::retry::Retryable;
use tokio::net::TcpListener;
use tonic::Status;
use tonic_prost::ProstCodec;

/// How many calls the client makes.
const CALLS: u64 = 20;
/// The one method of the demo service.
const SAY_HELLO: &str = "/embedded.Greeter/SayHello";

/// The request message of `SayHello`.
#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

/// The reply message of `SayHello`: the greeting and which backend produced it.
#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
    #[prost(string, tag = "2")]
    backend: String,
}

#[tokio::main]
async fn main() {
    match run().await {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("embedded-tonic: some calls failed");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("embedded-tonic: {e}");
            std::process::exit(1);
        }
    }
}

/// Counters of one backend: requests received, and how many were answered `UNAVAILABLE`.
#[derive(Debug, Default)]
struct Hits {
    received: AtomicU64,
    unavailable: AtomicU64,
}

/// Starts a backend named `name` on a loopback port; when `flaky`, every other request it
/// receives (the first, the third, …) is answered `UNAVAILABLE`.
async fn backend(name: &'static str, flaky: bool) -> Result<(SocketAddr, Arc<Hits>), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server = Server::new(listener);
    let addr = server.local_addr()?;
    let hits = Arc::new(Hits::default());
    let counters = Arc::clone(&hits);
    let service = tower::service_fn(move |req: Request<Incoming>| {
        let hits = Arc::clone(&counters);
        async move {
            if req.uri().path() != SAY_HELLO {
                return Ok::<_, Infallible>(Status::unimplemented("no such method").into_http());
            }
            let n = hits.received.fetch_add(1, Ordering::Relaxed);
            let say_hello = tower::service_fn(move |req: tonic::Request<HelloRequest>| {
                let hits = Arc::clone(&hits);
                async move {
                    if flaky && n % 2 == 0 {
                        hits.unavailable.fetch_add(1, Ordering::Relaxed);
                        return Err(Status::unavailable("flaky backend says no"));
                    }
                    Ok(tonic::Response::new(HelloReply {
                        message: format!("hello, {}", req.get_ref().name),
                        backend: name.to_owned(),
                    }))
                }
            });
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<HelloReply, HelloRequest>::default());
            Ok(grpc.unary(say_hello, req).await)
        }
    });
    tokio::spawn(server.serve(service));
    Ok((addr, hits))
}

async fn run() -> Result<bool, BoxError> {
    let (steady_addr, steady) = backend("steady", false).await?;
    let (flaky_addr, flaky) = backend("flaky", true).await?;
    println!("embedded-tonic: backends steady={steady_addr} flaky={flaky_addr}");

    let channel = mesh::Client::builder()
        .name("greeter")
        .endpoints([steady_addr, flaky_addr])
        .http(ClientConfig::default().protocol(Protocol::Http2))
        .seed(7)
        .build()?;
    let mut client = tonic::client::Grpc::with_origin(channel, Uri::from_static("http://greeter"));

    let mut succeeded = 0;
    for i in 0..CALLS {
        client
            .ready()
            .await
            .map_err(|e| format!("client not ready: {e}"))?;
        let mut request = tonic::Request::new(HelloRequest {
            name: format!("caller-{i}"),
        });
        // SayHello has no side effects, so a POST that may have reached a backend can be sent
        // again.
        request.extensions_mut().insert(Retryable);
        let codec = ProstCodec::<HelloRequest, HelloReply>::default();
        match client
            .unary(request, PathAndQuery::from_static(SAY_HELLO), codec)
            .await
        {
            Ok(reply) => {
                succeeded += 1;
                let reply = reply.into_inner();
                println!(
                    "embedded-tonic: call {i}: {} (from {})",
                    reply.message, reply.backend
                );
            }
            Err(status) => println!("embedded-tonic: call {i}: failed: {status}"),
        }
    }
    println!(
        "embedded-tonic: {succeeded}/{CALLS} calls succeeded; steady received {}, flaky received {} and answered UNAVAILABLE {} times",
        steady.received.load(Ordering::Relaxed),
        flaky.received.load(Ordering::Relaxed),
        flaky.unavailable.load(Ordering::Relaxed),
    );
    Ok(succeeded == CALLS)
}
