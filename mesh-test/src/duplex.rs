//! HTTP/1.1 connections to an in-memory hyper server, for client and pool tests on a paused clock.
//!
//! A `tokio::io::duplex` pipe instead of a socket: no port, no kernel buffers, and a paused test
//! clock measures pool waits and timeouts exactly. The server on the other end answers `/hold`
//! with a body that never ends (so the connection stays busy until the client drops the response)
//! and anything else with `hello`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mesh_core::{Body, Endpoint};
use tokio::io::DuplexStream;
use tower_service::Service;

/// Size of each direction's in-memory buffer: far above any test's headers and bodies.
const PIPE_BYTES: usize = 64 * 1024;

/// A connector (`Service<Endpoint>`) that opens each connection to a fresh in-memory HTTP/1.1
/// server, whatever the endpoint's address. Must be called inside a tokio runtime: the server
/// runs in a spawned task.
#[derive(Clone, Copy, Debug, Default)]
pub struct DuplexConnector;

impl Service<Endpoint> for DuplexConnector {
    type Response = DuplexStream;
    type Error = io::Error;
    type Future = Ready<io::Result<DuplexStream>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _endpoint: Endpoint) -> Self::Future {
        let (client, server) = tokio::io::duplex(PIPE_BYTES);
        tokio::spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                let body = match req.uri().path() {
                    "/hold" => Body::new(Endless),
                    _ => Body::from("hello"),
                };
                Ok::<_, Infallible>(Response::new(body))
            });
            // The client going away ends the connection; nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), service)
                .await;
        });
        ready(Ok(client))
    }
}

/// A response body that never yields a frame: the reader that never reads, seen from the pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct Endless;

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}
