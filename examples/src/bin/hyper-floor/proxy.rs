//! The floor itself: hyper's HTTP/1.1 server in front of hyper-util's pooled legacy client, and
//! nothing between them but the rewrite of the request target to the upstream's address.
//!
//! Kept in its own file so the allocation benchmark (`examples/benches/allocs.rs`) drives the
//! very same code in-process.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// What the floor answers with: the upstream's response as it streams in, or an empty `502`.
pub(crate) type FloorBody = Either<Incoming, Empty<Bytes>>;

/// The upstream side: hyper-util's legacy client (HTTP/1.1, keep-alive pool with its defaults:
/// idle connections kept 90 s, no cap per host) and the upstream's address.
#[derive(Clone, Debug)]
pub(crate) struct Floor {
    client: Client<HttpConnector, Incoming>,
    upstream: Authority,
}

impl Floor {
    /// A floor forwarding every request to `upstream`.
    pub(crate) fn new(upstream: SocketAddr) -> Self {
        let mut connector = HttpConnector::new();
        // As every proxy in the benchmark: no Nagle delay on the upstream hop.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let upstream = Authority::try_from(upstream.to_string())
            .expect("a socket address is a valid authority");
        Self { client, upstream }
    }

    /// Forwards `req` to the upstream with its path and query, its method, headers (`Host`
    /// included) and body unchanged; a failure to reach the upstream is answered `502`.
    pub(crate) async fn forward(
        &self,
        mut req: Request<Incoming>,
    ) -> Result<Response<FloorBody>, Infallible> {
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.upstream.clone());
        parts.path_and_query = Some(path);
        *req.uri_mut() = Uri::from_parts(parts).expect("scheme, authority and path are set");
        Ok(match self.client.request(req).await {
            Ok(res) => res.map(Either::Left),
            Err(_) => {
                let mut res = Response::new(Either::Right(Empty::new()));
                *res.status_mut() = StatusCode::BAD_GATEWAY;
                res
            }
        })
    }
}

/// Accepts connections on `listener` for ever, serving each with hyper's HTTP/1.1 server (keep-alive,
/// its default buffers) on a task of its own, every request through [`Floor::forward`].
pub(crate) async fn serve(listener: TcpListener, floor: Floor) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let floor = floor.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let floor = floor.clone();
                async move { floor.forward(req).await }
            });
            // A connection that fails (a reset, a malformed request) ends alone.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
