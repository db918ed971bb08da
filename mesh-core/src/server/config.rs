//! [`ServerConfig`]: the server's bounds and timeouts.

use std::time::Duration;

/// How a [`Server`](super::Server) bounds its connections.
///
/// Every field has a default chosen for a service or sidecar facing untrusted-but-not-hostile
/// clients; each is documented with the reason for its value. Build one with
/// `ServerConfig::default()` and the builder methods, which are named after the fields:
///
/// ```
/// use std::time::Duration;
/// use mesh_core::server::ServerConfig;
///
/// let config = ServerConfig::default()
///     .max_connections(1_000)
///     .drain_timeout(Some(Duration::from_secs(5)));
/// assert_eq!(config.max_connections, 1_000);
/// ```
///
/// Bounds that are hyper's own defaults and not configurable here: an HTTP/1.1 request head may
/// carry at most 100 header fields and must fit hyper's read buffer (about 400 KiB), otherwise the
/// request is refused (`431`); an HTTP/2 connection advertises a header list limit of 16 KiB and at
/// most 200 concurrent streams.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// How long the [`Acceptor`](super::Acceptor) handshake (TLS) may take. Default 10 s: long
    /// enough for a client on a slow network, short enough that half-open handshakes do not pin
    /// connection slots.
    pub handshake_timeout: Duration,

    /// How long a client may take to send a complete HTTP/1.1 request head, counted from the moment
    /// the server starts waiting for it. Default 30 s (hyper's own default); `None` disables it.
    ///
    /// This is the defence against slow-header ("slowloris") clients, and it also closes HTTP/1.1
    /// keep-alive connections idle for that long between requests (hyper starts the timer as soon as
    /// it waits for the next head); mesh-core's client therefore closes its idle HTTP/1.1
    /// connections sooner, after 20 s, so a request never races the server's close. The same bound applies to the first bytes of every connection,
    /// which the server reads to tell HTTP/1.1 from HTTP/2 prior knowledge: a client that connects
    /// and sends nothing, or only part of the HTTP/2 preface, is closed after this long. After the
    /// HTTP/2 preface, HTTP/2 connections are bounded only by
    /// [`http2_keep_alive_interval`](Self::http2_keep_alive_interval), if set.
    pub header_read_timeout: Option<Duration>,

    /// After shutdown is signalled, how long in-flight requests may take to finish before the
    /// remaining connections are closed. Default 30 s, the usual grace period of a process
    /// supervisor; `None` waits for ever.
    pub drain_timeout: Option<Duration>,

    /// The most connections served at once. Default 10 000, below common file-descriptor limits.
    ///
    /// When the limit is reached the server stops accepting (backpressure): new connections wait in
    /// the kernel's listen backlog until a connection closes, rather than being accepted and dropped.
    /// A value of 0 is treated as 1.
    pub max_connections: usize,

    /// Sends an HTTP/2 PING this often on an idle connection, and closes the connection when the
    /// peer does not answer within [`http2_keep_alive_timeout`](Self::http2_keep_alive_timeout).
    /// Default `None` (off): the mesh client keeps its own connections alive.
    pub http2_keep_alive_interval: Option<Duration>,

    /// How long to wait for the answer to an HTTP/2 keep-alive PING. Default 20 s. Only used when
    /// [`http2_keep_alive_interval`](Self::http2_keep_alive_interval) is set.
    pub http2_keep_alive_timeout: Duration,

    /// Sets `TCP_NODELAY` on accepted sockets. Default `true`: request/response traffic suffers from
    /// Nagle's algorithm.
    pub tcp_nodelay: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Some(Duration::from_secs(30)),
            drain_timeout: Some(Duration::from_secs(30)),
            max_connections: 10_000,
            http2_keep_alive_interval: None,
            http2_keep_alive_timeout: Duration::from_secs(20),
            tcp_nodelay: true,
        }
    }
}

impl ServerConfig {
    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`header_read_timeout`](Self::header_read_timeout).
    pub fn header_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`drain_timeout`](Self::drain_timeout).
    pub fn drain_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Sets [`max_connections`](Self::max_connections).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets [`http2_keep_alive_interval`](Self::http2_keep_alive_interval).
    pub fn http2_keep_alive_interval(mut self, interval: Option<Duration>) -> Self {
        self.http2_keep_alive_interval = interval;
        self
    }

    /// Sets [`http2_keep_alive_timeout`](Self::http2_keep_alive_timeout).
    pub fn http2_keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.http2_keep_alive_timeout = timeout;
        self
    }

    /// Sets [`tcp_nodelay`](Self::tcp_nodelay).
    pub fn tcp_nodelay(mut self, enabled: bool) -> Self {
        self.tcp_nodelay = enabled;
        self
    }
}
