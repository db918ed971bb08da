//! Retiring client connections: a connector keeps the `CloseHandle` of each connection it makes
//! (`client::connection_close_handle`); once closed, the client sends no new request on that
//! connection, while a response in progress is still read to its end.
//!
//! In-memory connections (a hyper server on the other end of a `tokio::io::duplex`), so every
//! connection the client opens is seen by the connector and nothing depends on sockets.

mod common;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use common::ChannelBody;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::client::{ClientConfig, HttpClient, Protocol, connection_close_handle};
use mesh_core::server::CloseHandle;
use mesh_core::{Body, Endpoint};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tower::{Service, ServiceExt};

/// Connects in memory and keeps the close handle of every connection, in order.
#[derive(Clone)]
struct Recording {
    protocol: Protocol,
    handles: Arc<Mutex<Vec<Option<CloseHandle>>>>,
    /// The body of `/stream`: what the test sends, until it drops the sender.
    stream: Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>,
}

impl Recording {
    fn handles(&self) -> Vec<Option<CloseHandle>> {
        self.handles.lock().unwrap().clone()
    }
}

impl Service<Endpoint> for Recording {
    type Response = DuplexStream;
    type Error = io::Error;
    type Future = Ready<io::Result<DuplexStream>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _endpoint: Endpoint) -> Self::Future {
        self.handles.lock().unwrap().push(connection_close_handle());
        let (client, server) = tokio::io::duplex(64 * 1024);
        let stream = self.stream.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let chunks = match req.uri().path() {
                "/stream" => stream.lock().unwrap().take(),
                _ => None,
            };
            let body = chunks.map_or_else(|| Body::from("hello"), |c| Body::new(ChannelBody(c)));
            async move { Ok::<_, Infallible>(Response::new(body)) }
        });
        let io = TokioIo::new(server);
        match self.protocol {
            Protocol::Http2 => tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
            }),
            _ => tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            }),
        };
        ready(Ok(client))
    }
}

fn client(recording: &Recording) -> HttpClient {
    let config = ClientConfig::default().protocol(recording.protocol);
    HttpClient::new(
        Endpoint::new("127.0.0.1:80".parse().unwrap()),
        recording.clone(),
        config,
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

async fn hello(client: &HttpClient) {
    let response = client.clone().oneshot(get("/")).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello");
}

fn recording(protocol: Protocol) -> Recording {
    Recording {
        protocol,
        handles: Arc::default(),
        stream: Arc::default(),
    }
}

/// Connection reuse, then a retired connection: the response in progress on it is read to the
/// end, and the next request goes over a new connection.
async fn a_retired_connection_finishes_its_response_and_takes_no_new_request(protocol: Protocol) {
    let recording = recording(protocol);
    let client = client(&recording);
    let (chunks, rx) = mpsc::channel(4);
    *recording.stream.lock().unwrap() = Some(rx);

    hello(&client).await;
    hello(&client).await;
    let handles = recording.handles();
    assert_eq!(handles.len(), 1, "one connection, reused");
    let first = handles[0].clone().expect("a handle while connecting");

    // A response in progress on the connection when it is retired.
    let response = client.clone().oneshot(get("/stream")).await.unwrap();
    chunks.send(Bytes::from("before ")).await.unwrap();
    first.close();
    chunks.send(Bytes::from("after")).await.unwrap();
    drop(chunks);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        body, "before after",
        "the response in progress is read to its end"
    );

    hello(&client).await;
    let handles = recording.handles();
    assert_eq!(
        handles.len(),
        2,
        "the next request went over a new connection"
    );
    let second = handles[1].clone().unwrap();
    assert!(!second.is_close_requested());
    hello(&client).await;
    assert_eq!(recording.handles().len(), 2, "the new connection is reused");

    // The retired connection is let go: its task ends.
    while !first.is_finished() {
        tokio::task::yield_now().await;
    }
    assert_eq!(client.open_connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn http1_a_retired_connection_finishes_its_response_and_takes_no_new_request() {
    a_retired_connection_finishes_its_response_and_takes_no_new_request(Protocol::Http1).await;
}

#[tokio::test(start_paused = true)]
async fn http2_a_retired_connection_finishes_its_response_and_takes_no_new_request() {
    a_retired_connection_finishes_its_response_and_takes_no_new_request(Protocol::Http2).await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_http1_connection_retired_in_the_pool_is_not_reused() {
    let recording = recording(Protocol::Http1);
    let client = client(&recording);
    hello(&client).await;
    while client.idle_connections() == 0 {
        tokio::task::yield_now().await;
    }
    recording.handles()[0].clone().unwrap().close();
    hello(&client).await;
    assert_eq!(recording.handles().len(), 2);
}
