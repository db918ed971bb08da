//! HTTP/1.1 and HTTP/2 serving on hyper, generic over the transport.
//!
//! [`Server`] runs a tower service on a [`TcpListener`](tokio::net::TcpListener) with the bounds a
//! service-mesh edge needs and that hyper leaves to its users:
//!
//! - **Transport seam.** An [`Acceptor`] turns each accepted TCP stream into the stream HTTP runs on:
//!   [`PlainAcceptor`] for plain TCP, `mesh-tls` for TLS. The handshake runs in the connection's own
//!   task under a timeout, so a slow or failing client never stalls the accept loop.
//! - **Who is calling.** Every request carries a [`ConnectionInfo`] (peer and local address) and the
//!   acceptor's per-connection values (such as the verified peer identity) in its extensions.
//! - **Closing from outside.** Every request also carries its connection's [`CloseHandle`]: a
//!   handler, or the acceptor that created it, can ask that one connection to close gracefully
//!   (`mesh-tls` does when a peer's certificate no longer verifies after a trust bundle change).
//! - **Bounded resources.** At most [`ServerConfig::max_connections`] connections, and at most
//!   [`ServerConfig::max_connections_per_peer`] from one IP address. Connections are idle when no
//!   request is in progress on them: idle ones are closed after [`ServerConfig::idle_timeout`], and
//!   at the limit the one idle the longest is closed to make room for a new client; only when every
//!   connection is busy do new ones wait, in the listen backlog (backpressure, not accept-and-drop).
//!   Against slow or hostile clients: a handshake timeout, a header-read timeout, a write-stall
//!   timeout (a client that stopped reading its response), HTTP/2 keep-alive PINGs, and one bound
//!   on the request head for both HTTP versions. `accept(2)` failures back off and never end the
//!   server.
//!
//! The defaults hold against a flood of idle connections: each costs a slot only until a new
//! client needs it, or for 30 s at most. Memory is another matter: each connection's buffers are
//! freed when it closes, but glibc's malloc keeps most freed memory in its heaps rather than
//! returning it to the system, so the process's resident size stays near its peak (measured: about
//! 150 MB after 9 000 idle HTTP/2 connections closed, 430 MB after 9 000 HTTP/1.1 connections
//! each stuck in a 30 KB request head); a second flood in the same process reused most of it
//! (its peak was about half as much again). Safe Rust cannot ask glibc to give the memory back
//! (`malloc_trim` is foreign code, and this crate forbids `unsafe`). An operator can have
//! large buffers allocated with `mmap`, which returns them on free, through the environment:
//! `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=32768` brought the HTTP/1.1 case down to about
//! 110 MB after close (`MALLOC_ARENA_MAX` did not help); or the binary can use another allocator.
//! [`ServerConfig::max_request_head_size`] also bounds the HTTP/1.1 read buffer, so a flood of
//! oversized heads costs at most 64 KiB per connection by default.
//!
//! Each connection speaks HTTP/2 if it opens with the HTTP/2 preface (h2c prior knowledge, or TLS with
//! ALPN `h2`) and HTTP/1.1 otherwise. [`ServerStats`] counts connections and failures.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response};
//! use hyper::body::Incoming;
//! use mesh_core::Body;
//! use mesh_core::server::{ConnectionInfo, Server, ServerConfig};
//! use tokio::net::TcpListener;
//! use tokio::sync::oneshot;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let hello = tower::service_fn(|req: Request<Incoming>| async move {
//!     let info = req.extensions().get::<ConnectionInfo>().copied();
//!     let caller = info.map(|info| info.peer_addr().to_string()).unwrap_or_default();
//!     Ok::<_, Infallible>(Response::new(Body::from(format!("hello, {caller}\n"))))
//! });
//!
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! let server = Server::new(listener).config(ServerConfig::default().max_connections(1_000));
//! println!("listening on {}", server.local_addr()?);
//!
//! // Usually `tokio::signal::ctrl_c()`; here the server is stopped at once.
//! let (stop, stopped) = oneshot::channel::<()>();
//! let running = tokio::spawn(server.serve_with_shutdown(hello, async {
//!     let _ = stopped.await;
//! }));
//! let _ = stop.send(());
//! running.await.expect("server task")?;
//! # Ok(())
//! # }
//! ```

/// Implements `AsyncWrite` for a server-side IO wrapper whose writes go straight to its `io`
/// field (the wrapper only changes reads).
#[cfg(feature = "server")]
macro_rules! forward_async_write {
    ($wrapper:ident) => {
        impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<I> {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.io.is_write_vectored()
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
            }
        }
    };
}

// The transport seam is always compiled: the layer crates read `ConnectionInfo` and
// `CloseHandle` from request extensions without serving HTTP themselves.
mod acceptor;
mod close;
#[cfg(feature = "server")]
mod config;
#[cfg(feature = "server")]
mod connection;
#[cfg(feature = "server")]
mod preface_deadline;
#[cfg(feature = "server")]
mod protocol;
#[cfg(feature = "server")]
mod registry;
#[cfg(feature = "server")]
mod rewind;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
mod stats;
#[cfg(feature = "server")]
mod tracked;
#[cfg(feature = "server")]
mod write_stall;

pub use acceptor::{Acceptor, ConnectionInfo, PlainAcceptor};
pub use close::CloseHandle;
#[cfg(any(feature = "server", feature = "client"))]
pub(crate) use close::FinishOnDrop;
#[cfg(feature = "server")]
pub use config::ServerConfig;
#[cfg(feature = "server")]
pub use serve::Server;
#[cfg(feature = "server")]
pub use stats::ServerStats;
