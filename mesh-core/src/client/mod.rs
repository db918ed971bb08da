//! An HTTP client for one endpoint: [`HttpClient`], a `tower::Service` over hyper's connection APIs.
//!
//! A balancer (`mesh-balance`) builds one `HttpClient` per endpoint and picks among them; this module
//! only has to talk to one address well:
//!
//! - **HTTP/1.1** ([`Protocol::Http1`], the default): a pool of at most
//!   [`max_connections`](ClientConfig::max_connections) keep-alive connections. HTTP/1.1 carries one
//!   request at a time per connection, so the limit is also the number of requests in flight, and it is
//!   enforced through readiness: `poll_ready` reserves a slot and is `Pending` while all are busy, for
//!   at most [`pool_wait_timeout`](ClientConfig::pool_wait_timeout); past it the request fails with
//!   [`PoolExhausted`](crate::error::PoolExhausted) (503 `pool_exhausted` at a proxy edge). A
//!   connection returns to the pool once its response body has been read to the end; one whose body
//!   was dropped early is closed instead (hyper cannot reuse it). Idle connections are reused most
//!   recent first; those the server closed, or idle for longer than
//!   [`idle_timeout`](ClientConfig::idle_timeout), are skipped. When a pooled connection turns out to
//!   be closed before the request was written, the request is sent once more on a new connection.
//!   A request sent the instant the previous body ended normally takes that connection; on a
//!   multi-threaded runtime it can lose that race and open a second one (still within the limit).
//!   Upgrades (`101 Switching Protocols`, `CONNECT`) work through `hyper::upgrade::on`; the upgraded
//!   connection leaves the pool.
//! - **HTTP/2** ([`Protocol::Http2`], prior knowledge over plaintext): one multiplexed connection shared
//!   by every clone, opened by the first request and opened again after it closes (`GOAWAY`, error).
//!   Requests that arrive while it is being opened wait for that attempt and share its outcome.
//! - **Connecting** goes through any [`Connect`] service: [`TcpConnector`] here, a TLS connector from
//!   `mesh-tls`. The client bounds it with [`connect_timeout`](ClientConfig::connect_timeout)
//!   (tokio time, so a paused test clock drives it).
//! - **Retiring** a connection: a connector may take the connection's
//!   [`CloseHandle`](crate::server::CloseHandle) with [`connection_close_handle`] while it connects;
//!   closing it later stops new requests on that connection and lets those in progress finish
//!   (`mesh-tls` does so when new trust bundles no longer verify the server's certificate).
//! - **Failures** are typed: [`ConnectError`](crate::error::ConnectError) when no connection could be
//!   made (caused by [`Timeout`](crate::error::Timeout) on the connect timeout), and
//!   [`UpstreamError`](crate::error::UpstreamError) when the exchange failed, with
//!   [`request_sent`](crate::error::UpstreamError::request_sent) `false` when the request certainly did
//!   not reach the server (a closed pooled connection, HTTP/2 `REFUSED_STREAM`, a stream above a
//!   graceful `GOAWAY`), which a retry layer may use. When the request's own body fails while it is
//!   sent (a client's malformed chunked upload that a proxy forwards), the error is a
//!   [`BadRequest`](crate::error::BadRequest) caused by a
//!   [`RequestBodyError`](crate::error::RequestBodyError): the client's fault, `400` at a proxy edge,
//!   and not counted against the endpoint.
//!
//! Requests are adjusted for the wire: HTTP/1.1 gets an origin-form target and a `Host` header; HTTP/2
//! gets a scheme and authority in its URI (from the request, its `Host` header, or the endpoint
//! address). No other header is touched: hop-by-hop rules belong to [`proxy`](crate::proxy).
//!
//! Connection tasks are spawned on the current tokio runtime with `tokio::spawn`, as is, for HTTP/1.1,
//! a small task per response that returns the connection to the pool once the body is read.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use mesh_core::Endpoint;
//! use mesh_core::client::{ClientConfig, HttpClient, Protocol, TcpConnector};
//! use tower::ServiceExt;
//!
//! # async fn run() -> Result<(), mesh_core::BoxError> {
//! let endpoint = Endpoint::new("127.0.0.1:8080".parse()?);
//! let config = ClientConfig::default().protocol(Protocol::Http2);
//! let client = HttpClient::<Full<Bytes>>::new(endpoint, TcpConnector::new(), config);
//!
//! let request = http::Request::get("/orders/42").body(Full::new(Bytes::new()))?;
//! let response = client.clone().oneshot(request).await?;
//! let body = response.into_body().collect().await?.to_bytes();
//! println!("{} bytes", body.len());
//! # Ok(())
//! # }
//! ```

mod config;
mod connect;
mod future;
mod http1;
mod http2;
mod request;
mod request_body;
mod service;

pub use config::{ClientConfig, Protocol};
pub use connect::{Connect, TcpConnectFuture, TcpConnector, connection_close_handle};
pub use future::ResponseFuture;
pub use service::HttpClient;
