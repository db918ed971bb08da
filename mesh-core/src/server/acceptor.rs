//! The transport step between `accept(2)` and HTTP: [`Acceptor`], [`PlainAcceptor`], [`ConnectionInfo`].

use std::future::{Ready, ready};
use std::net::SocketAddr;

use http::Extensions;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::BoxError;

/// The addresses of one accepted TCP connection.
///
/// The server inserts it into the extensions of every request read from that connection, so a
/// handler or a layer (authorization, access logs, `Forwarded`) can see who is calling without the
/// transport being threaded through the service stack:
///
/// ```
/// use http::Request;
/// use mesh_core::server::ConnectionInfo;
///
/// fn caller<B>(req: &Request<B>) -> Option<std::net::SocketAddr> {
///     req.extensions().get::<ConnectionInfo>().map(|info| info.peer_addr())
/// }
/// # let mut req = Request::new(());
/// # let info = ConnectionInfo::new("10.0.0.1:4000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
/// # req.extensions_mut().insert(info);
/// # assert_eq!(caller(&req), Some("10.0.0.1:4000".parse().unwrap()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ConnectionInfo {
    peer_addr: SocketAddr,
    local_addr: SocketAddr,
}

impl ConnectionInfo {
    /// Describes a connection from `peer_addr` accepted on `local_addr`.
    ///
    /// Public so that acceptors and tests can build one; the server builds its own from the socket.
    pub fn new(peer_addr: SocketAddr, local_addr: SocketAddr) -> Self {
        Self {
            peer_addr,
            local_addr,
        }
    }

    /// The remote end of the TCP connection: the client, or the last proxy in front of it.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The local end of the TCP connection. For a listener bound to an unspecified address
    /// (`0.0.0.0`), this is the concrete address the client connected to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// Turns an accepted TCP stream into the byte stream HTTP is served on.
///
/// This is the seam where TLS plugs in: `mesh-tls` implements it to run the TLS handshake, verify the
/// client certificate and hand back the encrypted stream, together with per-connection values such as
/// the verified peer identity. [`PlainAcceptor`] serves plain TCP.
///
/// # Contract
///
/// - [`accept`](Acceptor::accept) is called inside the connection's own task, so a slow handshake never
///   holds up the accept loop. The server bounds the returned future by
///   [`ServerConfig::handshake_timeout`](super::ServerConfig::handshake_timeout) and drops it when the
///   server shuts down; an error or a timeout closes that one connection, is logged at `debug` and
///   counted in [`ServerStats`](super::ServerStats), and never stops the server.
/// - The returned [`Extensions`] are copied into the extensions of **every** request read from the
///   connection, after the server's [`ConnectionInfo`]; so values of the same type replace it (a
///   PROXY-protocol acceptor may report the original client address this way). Values must be cheap
///   to clone: they are cloned once per request. Return `Extensions::new()` when there is nothing to add.
/// - If the extensions carry a [`CloseHandle`](super::CloseHandle), the server watches it and
///   closes the connection gracefully when it is closed; otherwise the server makes its own. So an
///   acceptor that may need to close a connection later (after a trust bundle change, say) keeps a
///   clone of a handle it returns here.
pub trait Acceptor: Clone + Send + 'static {
    /// The stream HTTP is served on.
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// The handshake in progress.
    type Future: Future<Output = Result<(Self::Io, Extensions), BoxError>> + Send + 'static;

    /// Starts the handshake on a freshly accepted connection.
    fn accept(&self, tcp: TcpStream, info: &ConnectionInfo) -> Self::Future;
}

/// The [`Acceptor`] for plain TCP: no handshake, no per-connection values.
///
/// HTTP/2 over plain TCP is spoken with prior knowledge (h2c): the server recognises the client's
/// HTTP/2 connection preface.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct PlainAcceptor;

impl PlainAcceptor {
    /// The plain TCP acceptor.
    pub fn new() -> Self {
        Self
    }
}

impl Acceptor for PlainAcceptor {
    type Io = TcpStream;
    type Future = Ready<Result<(TcpStream, Extensions), BoxError>>;

    fn accept(&self, tcp: TcpStream, _info: &ConnectionInfo) -> Self::Future {
        ready(Ok((tcp, Extensions::new())))
    }
}
