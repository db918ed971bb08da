//! The HTTP side of one connection: choosing the version, serving it, and parking idle HTTP/1.1
//! connections.
//!
//! # Choosing the version
//!
//! The server reads a connection's first bytes itself, up to the 24-byte HTTP/2 connection
//! preface (RFC 9113 §3.4): the first byte that differs from it means HTTP/1.1, the whole preface
//! means HTTP/2 (prior knowledge over plain TCP, or after ALPN `h2` over TLS: the preface is sent
//! either way, so one rule serves every acceptor). The bytes read are handed to hyper in front of
//! the socket ([`Rewind`]).
//!
//! # Parking
//!
//! hyper's HTTP/1.1 connection keeps its read buffer (8 KiB, grown up to the head-size bound)
//! and its write buffer (8 KiB) for the connection's whole life, and offers no way to release
//! them; for a proxy holding thousands of pooled, mostly idle keep-alive connections they are
//! most of its memory. So once an HTTP/1.1 connection has been idle for
//! [`ServerConfig::http1_park_after`](super::ServerConfig::http1_park_after), the server takes
//! the socket back from hyper (`into_parts`) and drops hyper's connection, buffers and all: the
//! parked connection holds the socket, the service and the server's small per-connection state,
//! and waits for the socket to become readable. When the client's next bytes arrive, they are
//! read (a few bytes, through the same IO stack) and a fresh hyper connection is built with them
//! in front of the socket. hyper's connection is boxed, so while parked the task's own size does
//! not include it either.
//!
//! Nothing may be lost, so a connection parks only when all of these hold:
//!
//! - no request is in progress (the server's own count: from the service call until the
//!   response body has ended or been dropped), and none has started since the idle period began;
//! - hyper has nothing left to write: the IO stack records whether the last write or flush was
//!   blocked, and a blocked one forbids parking (hyper's write buffer is private);
//! - hyper's last poll returned `Pending`, i.e. it is waiting for the client;
//! - the client has sent nothing since the last bytes written to it: once a response is out, the
//!   first bytes read begin the next request, which hyper is then parsing (the connection task's
//!   header-read deadline, counted from the start of the idle period, keeps running either way).
//!
//! Bytes hyper holds that arrived before the last response was written (a pipelined request)
//! come back with the socket; they are replayed to a new hyper connection at once (no waiting),
//! and that connection is not parked again in the same idle period.
//!
//! What a park costs: the first request after it pays for a new hyper connection (its state and
//! its two buffers, a few allocations) and one extra read. Busy keep-alive connections never park:
//! each request restarts the idle period. HTTP/2 connections are not parked (the HTTP/2 state
//! is the connection). Over TLS the same happens (the TLS stream's own buffers stay; rustls keeps
//! them per connection).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tower_service::Service;

use super::connection::ConnectionContext;
use super::preface_deadline::H2_PREFACE;
use super::rewind::Rewind;
use crate::error::BoxError;

/// How many bytes a parked connection reads when it wakes. Any number works (the rest stays in
/// the socket for hyper); a request line rarely fits in fewer.
const WAKE_READ: usize = 64;

/// The hyper builders of one server, shared by its connections.
#[derive(Clone, Debug)]
pub(super) struct Builders {
    pub(super) http1: http1::Builder,
    pub(super) http2: http2::Builder<TokioExecutor>,
}

/// The bytes read so far while choosing the version.
#[derive(Debug, Default)]
pub(super) struct Sniff {
    seen: [u8; H2_PREFACE.len()],
    len: usize,
}

/// hyper's HTTP/2 connection over the server's IO stack.
type Http2Connection<I, S> = http2::Connection<TokioIo<Rewind<I>>, S, TokioExecutor>;

/// One connection's HTTP state.
pub(super) enum HttpConnection<I, S>
where
    S: HttpService<Incoming>,
{
    /// No hyper connection: waiting for bytes, to choose the version (`sniff`) or to end a park.
    Waiting {
        io: Rewind<I>,
        service: S,
        sniff: Option<Sniff>,
    },
    Http1(Box<http1::UpgradeableConnection<TokioIo<Rewind<I>>, S>>),
    Http2(Pin<Box<Http2Connection<I, S>>>),
    /// Ended (a park that found the connection upgraded, or a failed transition).
    Ended,
}

impl<I, S: HttpService<Incoming>> std::fmt::Debug for HttpConnection<I, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self {
            Self::Waiting { sniff: Some(_), .. } => "choosing version",
            Self::Waiting { sniff: None, .. } => "parked",
            Self::Http1(_) => "http1",
            Self::Http2(_) => "http2",
            Self::Ended => "ended",
        };
        f.debug_tuple("HttpConnection").field(&state).finish()
    }
}

/// What [`HttpConnection::park`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Parked {
    /// Parked: waiting for the client's next bytes.
    Waiting,
    /// hyper had read bytes of a next request: a fresh connection serves them at once.
    Rebuilt,
    /// There was no HTTP/1.1 connection to park.
    No,
}

impl<I, S, B> HttpConnection<I, ConnectionContext<S>>
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// A connection about to choose its version.
    pub(super) fn new(io: I, service: ConnectionContext<S>) -> Self {
        Self::Waiting {
            io: Rewind::new(io),
            service,
            sniff: Some(Sniff::default()),
        }
    }

    /// Whether an HTTP/1.1 hyper connection is serving (it may be parked).
    pub(super) fn is_http1(&self) -> bool {
        matches!(self, Self::Http1(_))
    }

    /// Whether an HTTP/2 hyper connection is serving.
    pub(super) fn is_http2(&self) -> bool {
        matches!(self, Self::Http2(_))
    }

    /// Whether the connection is parked.
    pub(super) fn is_parked(&self) -> bool {
        matches!(self, Self::Waiting { sniff: None, .. })
    }

    /// Starts a graceful shutdown. Returns `true` when there is nothing to finish (no hyper
    /// connection: choosing the version, parked or ended): the caller drops the connection.
    pub(super) fn graceful_shutdown(&mut self) -> bool {
        match self {
            Self::Http1(conn) => {
                Pin::new(&mut **conn).graceful_shutdown();
                false
            }
            Self::Http2(conn) => {
                conn.as_mut().graceful_shutdown();
                false
            }
            Self::Waiting { .. } | Self::Ended => true,
        }
    }

    /// Drives the connection; `Ready` when it has ended.
    pub(super) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        builders: &Builders,
    ) -> Poll<Result<(), BoxError>> {
        loop {
            match self {
                Self::Http1(conn) => return Pin::new(&mut **conn).poll(cx).map_err(Into::into),
                Self::Http2(conn) => return conn.as_mut().poll(cx).map_err(Into::into),
                Self::Ended => return Poll::Ready(Ok(())),
                Self::Waiting { io, sniff, .. } => {
                    let next = match sniff {
                        Some(sniff) => ready!(poll_sniff(io, sniff, cx))?,
                        None => ready!(poll_wake(io, cx))?,
                    };
                    let Self::Waiting { io, service, .. } = std::mem::replace(self, Self::Ended)
                    else {
                        unreachable!("matched above");
                    };
                    *self = match next {
                        Next::Http1 => Self::http1(builders, io, service),
                        Next::Http2 => Self::Http2(Box::pin(
                            builders.http2.serve_connection(TokioIo::new(io), service),
                        )),
                        Next::End => return Poll::Ready(Ok(())),
                    };
                }
            }
        }
    }

    fn http1(builders: &Builders, io: Rewind<I>, service: ConnectionContext<S>) -> Self {
        Self::Http1(Box::new(
            builders
                .http1
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades(),
        ))
    }

    /// Takes the socket back from hyper's HTTP/1.1 connection and drops the rest. The caller has
    /// checked that nothing is lost (see the module docs); bytes hyper had read come back.
    pub(super) fn park(&mut self, builders: &Builders) -> Parked {
        if !self.is_http1() {
            return Parked::No;
        }
        let Self::Http1(conn) = std::mem::replace(self, Self::Ended) else {
            unreachable!("checked above");
        };
        let Some(parts) = conn.into_parts() else {
            // Upgraded: the connection is no longer ours.
            return Parked::No;
        };
        let mut io = parts.io.into_inner();
        io.rewind(parts.read_buf);
        if io.has_replay() {
            *self = Self::http1(builders, io, parts.service);
            Parked::Rebuilt
        } else {
            *self = Self::Waiting {
                io,
                service: parts.service,
                sniff: None,
            };
            Parked::Waiting
        }
    }
}

/// What a waiting connection does next.
enum Next {
    Http1,
    Http2,
    End,
}

/// Reads until the bytes tell HTTP/1.1 from the HTTP/2 preface; the bytes read are rewound.
fn poll_sniff<I: AsyncRead + Unpin>(
    io: &mut Rewind<I>,
    sniff: &mut Sniff,
    cx: &mut Context<'_>,
) -> Poll<io::Result<Next>> {
    loop {
        let mut buf = ReadBuf::new(&mut sniff.seen[sniff.len..]);
        ready!(Pin::new(&mut *io).poll_read(cx, &mut buf))?;
        let read = buf.filled().len();
        if read == 0 {
            // The client left before its first request (or within a partial preface).
            return Poll::Ready(Ok(Next::End));
        }
        sniff.len += read;
        let seen = &sniff.seen[..sniff.len];
        let next = if seen != &H2_PREFACE[..sniff.len] {
            Next::Http1
        } else if sniff.len == H2_PREFACE.len() {
            Next::Http2
        } else {
            continue;
        };
        io.rewind(Bytes::copy_from_slice(seen));
        return Poll::Ready(Ok(next));
    }
}

/// Waits, parked, for the client's next bytes; they are rewound for the new hyper connection.
fn poll_wake<I: AsyncRead + Unpin>(
    io: &mut Rewind<I>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<Next>> {
    let mut bytes = [0u8; WAKE_READ];
    let mut buf = ReadBuf::new(&mut bytes);
    ready!(Pin::new(&mut *io).poll_read(cx, &mut buf))?;
    if buf.filled().is_empty() {
        // The client closed its idle connection.
        return Poll::Ready(Ok(Next::End));
    }
    io.rewind(Bytes::copy_from_slice(buf.filled()));
    Poll::Ready(Ok(Next::Http1))
}
