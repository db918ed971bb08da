//! [`ClientConfig`] and [`Protocol`]: what an [`HttpClient`](super::HttpClient) is told at construction.

use std::time::Duration;

/// The HTTP version an [`HttpClient`](super::HttpClient) speaks to its endpoint.
///
/// The choice is fixed per client. Plaintext HTTP/2 uses *prior knowledge* (h2c, RFC 9113 §3.3): the
/// client starts with the HTTP/2 preface and never tries an HTTP/1.1 `Upgrade`.
///
/// Not built yet: choosing the version per connection from TLS ALPN. Until it is, pair a TLS connector
/// with the protocol the peer is known to speak (for HTTP/2, offer only `h2` in ALPN). The natural hook
/// is the connector's IO type reporting the negotiated protocol, which the dialer would read after
/// connecting to pick the HTTP/1.1 or HTTP/2 handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP/1.1 over a bounded pool of keep-alive connections, one request at a time on each.
    #[default]
    Http1,
    /// HTTP/2 over one shared, multiplexed connection.
    Http2,
}

/// Settings of an [`HttpClient`](super::HttpClient).
///
/// Start from [`ClientConfig::default()`] and change what you need with the builder methods:
///
/// ```
/// use std::time::Duration;
/// use mesh_core::client::{ClientConfig, Protocol};
///
/// let config = ClientConfig::default()
///     .protocol(Protocol::Http2)
///     .connect_timeout(Duration::from_millis(500))
///     .http2_keep_alive_interval(Duration::from_secs(10));
/// assert_eq!(config.get_max_connections(), 64);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// HTTP/1.1 or HTTP/2. Default [`Protocol::Http1`].
    pub(crate) protocol: Protocol,
    /// The longest a new connection may take: the connector's work (TCP, and TLS when a TLS connector is
    /// used) plus the HTTP handshake. Default 1 s: connections inside a mesh are made between nearby
    /// hosts, so a connect that takes longer than that is better retried on another endpoint.
    pub(crate) connect_timeout: Duration,
    /// HTTP/1.1 only: the most connections open at once, which is also the most requests in flight,
    /// since an HTTP/1.1 connection carries one request at a time. Default 64. Values below 1 count as 1.
    pub(crate) max_connections: usize,
    /// HTTP/1.1 only: how long a request may wait for one of the
    /// [`max_connections`](ClientConfig::max_connections) to come free before it fails with
    /// [`PoolExhausted`](crate::error::PoolExhausted). Once one request has waited that long in vain,
    /// later requests fail at once, without waiting, until a connection is free again.
    ///
    /// Default 1 s. A connection frees when its response body has been read to the end, which inside
    /// a mesh takes milliseconds; a request still waiting after a second is queued behind long or
    /// stalled responses (clients reading a large body slowly), and is better failed, or retried on
    /// another endpoint, since it was never sent. It must stay below the balancer's fail-fast time
    /// (3 s by default in `mesh-balance`), or a saturated endpoint is reported as
    /// [`NoEndpoints`](crate::error::NoEndpoints) instead. Zero: fail at once when every connection
    /// is busy.
    pub(crate) pool_wait_timeout: Duration,
    /// HTTP/1.1 only: an idle connection unused for longer than this is closed instead of reused.
    /// Default 20 s: below the 30 s after which hyper-based servers (mesh-core's among them) close an
    /// idle HTTP/1.1 connection, so the client, not the server, ends it, and a request is never written
    /// to a connection the server is closing at that moment. Lower it for servers that close sooner
    /// (Node.js closes after 5 s by default). Expired connections are dropped when the pool is next used; no
    /// timer task runs for them.
    pub(crate) idle_timeout: Duration,
    /// HTTP/2 only: when set, the client sends a PING this often, even while no request is in flight,
    /// and closes the connection when no acknowledgement arrives within 20 s. Default `None` (off).
    pub(crate) http2_keep_alive_interval: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            protocol: Protocol::Http1,
            connect_timeout: Duration::from_secs(1),
            max_connections: 64,
            pool_wait_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(20),
            http2_keep_alive_interval: None,
        }
    }
}

impl ClientConfig {
    /// HTTP/1.1 or HTTP/2. Default [`Protocol::Http1`].
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// The longest a new connection may take: the connector's work (TCP, and TLS when a TLS connector is
    /// used) plus the HTTP handshake. Default 1 s: connections inside a mesh are made between nearby
    /// hosts, so a connect that takes longer than that is better retried on another endpoint.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// HTTP/1.1 only: the most connections open at once, which is also the most requests in flight,
    /// since an HTTP/1.1 connection carries one request at a time. Default 64. Values below 1 count as 1.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// HTTP/1.1 only: how long a request may wait for one of the
    /// [`max_connections`](ClientConfig::max_connections) to come free before it fails with
    /// [`PoolExhausted`](crate::error::PoolExhausted). Once one request has waited that long in vain,
    /// later requests fail at once, without waiting, until a connection is free again.
    ///
    /// Default 1 s. A connection frees when its response body has been read to the end, which inside
    /// a mesh takes milliseconds; a request still waiting after a second is queued behind long or
    /// stalled responses (clients reading a large body slowly), and is better failed, or retried on
    /// another endpoint, since it was never sent. It must stay below the balancer's fail-fast time
    /// (3 s by default in `mesh-balance`), or a saturated endpoint is reported as
    /// [`NoEndpoints`](crate::error::NoEndpoints) instead. Zero: fail at once when every connection
    /// is busy.
    pub fn pool_wait_timeout(mut self, timeout: Duration) -> Self {
        self.pool_wait_timeout = timeout;
        self
    }

    /// HTTP/1.1 only: an idle connection unused for longer than this is closed instead of reused.
    /// Default 20 s: below the 30 s after which hyper-based servers (mesh-core's among them) close an
    /// idle HTTP/1.1 connection, so the client, not the server, ends it, and a request is never written
    /// to a connection the server is closing at that moment. Lower it for servers that close sooner
    /// (Node.js closes after 5 s by default). Expired connections are dropped when the pool is next used; no
    /// timer task runs for them.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// HTTP/2 only: when set, the client sends a PING this often, even while no request is in flight,
    /// and closes the connection when no acknowledgement arrives within 20 s. Default `None` (off).
    pub fn http2_keep_alive_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.http2_keep_alive_interval = interval.into();
        self
    }

    /// The connection limit actually applied: at least 1, at most what a tokio semaphore can count.
    pub(crate) fn effective_max_connections(&self) -> usize {
        self.max_connections
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS)
    }

    /// The [`protocol`](method@Self::protocol) setting.
    pub fn get_protocol(&self) -> Protocol {
        self.protocol
    }

    /// The [`connect_timeout`](method@Self::connect_timeout) setting.
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The [`max_connections`](method@Self::max_connections) setting.
    pub fn get_max_connections(&self) -> usize {
        self.max_connections
    }

    /// The [`pool_wait_timeout`](method@Self::pool_wait_timeout) setting.
    pub fn get_pool_wait_timeout(&self) -> Duration {
        self.pool_wait_timeout
    }

    /// The [`idle_timeout`](method@Self::idle_timeout) setting.
    pub fn get_idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The [`http2_keep_alive_interval`](method@Self::http2_keep_alive_interval) setting.
    pub fn get_http2_keep_alive_interval(&self) -> Option<Duration> {
        self.http2_keep_alive_interval
    }
}

/// How long an HTTP/2 keep-alive PING may go unanswered before the connection is closed.
pub(crate) const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
