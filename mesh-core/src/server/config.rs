//! [`ServerConfig`]: the server's bounds and timeouts.

use std::time::Duration;

use crate::error::ConfigError;

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
/// assert_eq!(config.get_max_connections(), 1_000);
/// ```
///
/// Bounds that are hyper's own defaults and not configurable here: an HTTP/1.1 request head may
/// carry at most 100 header fields (`431` beyond); an HTTP/2 connection allows at most 200
/// concurrent streams.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// How long the [`Acceptor`](super::Acceptor) handshake (TLS) may take. Default 10 s: long
    /// enough for a client on a slow network, short enough that half-open handshakes do not pin
    /// connection slots.
    pub(crate) handshake_timeout: Duration,

    /// How long a client may take to send a complete HTTP/1.1 request head, counted from the moment
    /// the server starts waiting for it: from when the connection opened, or from when the previous
    /// response was written out. Default 30 s (hyper's own default); `None` disables it.
    ///
    /// This is the defence against slow-header ("slowloris") clients, and it also closes HTTP/1.1
    /// keep-alive connections idle for that long between requests (the server waits for the next
    /// head as soon as a response is written out); mesh-core's client therefore closes its idle
    /// HTTP/1.1 connections sooner, after 20 s, so a request never races the server's close. The
    /// close is the idle timeout's (at once between requests, a partial head included). The
    /// connection's own task keeps this deadline with its idle timer, not hyper (whose timer
    /// would be armed and cancelled once per request). The same bound applies to the first bytes of every connection,
    /// which the server reads to tell HTTP/1.1 from HTTP/2 prior knowledge: a client that connects
    /// and sends nothing, or only part of the HTTP/2 preface, is closed after this long. After the
    /// HTTP/2 preface, HTTP/2 connections are bounded by [`idle_timeout`](Self::idle_timeout)
    /// and the keep-alive PINGs.
    pub(crate) header_read_timeout: Option<Duration>,

    /// How long a connection may stay open with no request in progress, over either HTTP version.
    /// Default 30 s, the same as [`header_read_timeout`](Self::header_read_timeout) for HTTP/1.1;
    /// `None` disables it.
    ///
    /// A request is in progress from the moment it is read until its response body has been
    /// written out (or dropped), so streaming responses, long polls and gRPC streams never count as
    /// idle. This is what closes an HTTP/2 client that sends its preface and SETTINGS and then
    /// nothing: without it such a connection would hold a slot for ever. The close is graceful
    /// (HTTP/2 `GOAWAY`; HTTP/1.1 closes at once between requests); a peer that does not finish
    /// the `GOAWAY` exchange within one second while still idle is disconnected. Counted in
    /// [`ServerStats::idle_closed`](super::ServerStats::idle_closed).
    pub(crate) idle_timeout: Option<Duration>,

    /// How long a write to the client may stay blocked with no progress before the connection is
    /// closed. Default 30 s; `None` disables it.
    ///
    /// This cuts clients that stop reading a response (their TCP window is full): without it such
    /// a client holds the response body, and with it, in a proxy, an upstream connection, for ever.
    /// Only time spent in a blocked write counts: a response that is slow to produce (a long poll,
    /// a server-sent event stream) is never cut, and a slow reader that keeps draining the
    /// socket, however slowly, is not either. HTTP/2 flow control is not covered: a client that
    /// keeps its socket drained but never grants window to one stream stalls only that stream,
    /// which the service's own timeouts must bound. Counted in
    /// [`ServerStats::write_stalls`](super::ServerStats::write_stalls).
    pub(crate) write_stall_timeout: Option<Duration>,

    /// After shutdown is signalled, how long in-flight requests may take to finish before the
    /// remaining connections are closed. Default 30 s, the usual grace period of a process
    /// supervisor; `None` waits for ever.
    pub(crate) drain_timeout: Option<Duration>,

    /// The most connections served at once. Default 10 000, below common file-descriptor limits.
    ///
    /// When the limit is reached the server stops accepting (backpressure): new connections wait in
    /// the kernel's listen backlog until a connection closes, rather than being accepted and dropped.
    /// A value of 0 is treated as 1.
    ///
    /// When a new connection arrives at the limit and some connections have no request in
    /// progress, the one idle for the longest time is closed to make room (HTTP/2 `GOAWAY`, then
    /// disconnected), so a flood of idle connections cannot lock other clients out. Counted in
    /// [`ServerStats::evicted_idle`](super::ServerStats::evicted_idle). Only when every connection
    /// is busy does the new one wait for a slot.
    pub(crate) max_connections: usize,

    /// The most connections served at once from one client IP address (ports are not told
    /// apart). Default 1 024; a value of 0 is treated as 1, `usize::MAX` disables the cap.
    ///
    /// A connection beyond the cap is closed at once, without being served, and counted in
    /// [`ServerStats::per_peer_refused`](super::ServerStats::per_peer_refused): one client cannot
    /// take every slot of [`max_connections`](Self::max_connections). 1 024 is the number of
    /// connections Envoy opens to one upstream cluster by default, so a well-behaved proxy in
    /// front never meets it, while a single host needs ten times that to fill the default
    /// 10 000 slots. Raise it for listeners whose clients all share one address (behind a NAT or
    /// a load balancer that does not preserve client addresses, or a sidecar's outbound listener,
    /// where every connection comes from the local application).
    pub(crate) max_connections_per_peer: usize,

    /// The largest request head accepted, in bytes. Default 64 KiB (Envoy's default limit is
    /// 60 KiB); values below 8 KiB are raised to 8 KiB.
    ///
    /// One bound for both versions: HTTP/1.1 requests whose request line and headers do not fit
    /// are answered `431 Request Header Fields Too Large` and the connection closed (this is also
    /// the size of hyper's read buffer); HTTP/2 connections advertise it as
    /// `SETTINGS_MAX_HEADER_LIST_SIZE` (RFC 9113 §6.5.2: decoded names and values plus 32 bytes
    /// per field) and answer larger requests `431` on that stream. A proxy therefore never
    /// forwards a head larger than this, which its upstream would refuse anyway.
    pub(crate) max_request_head_size: usize,

    /// Sends an HTTP/2 PING when nothing has been received for this long, and closes the connection
    /// when the peer does not answer within
    /// [`http2_keep_alive_timeout`](Self::http2_keep_alive_timeout). Default 20 s; `None` turns
    /// PINGs off.
    ///
    /// This finds peers that vanished without closing (a host gone, a NAT entry expired) and peers
    /// that stopped reading, even while they keep streams open. 20 s is below the 30 s
    /// [`idle_timeout`](Self::idle_timeout), so a dead peer with an open stream is found within
    /// 40 s.
    pub(crate) http2_keep_alive_interval: Option<Duration>,

    /// How long to wait for the answer to an HTTP/2 keep-alive PING. Default 20 s, generous for
    /// any round trip. Only used when
    /// [`http2_keep_alive_interval`](Self::http2_keep_alive_interval) is set.
    pub(crate) http2_keep_alive_timeout: Duration,

    /// Sets `TCP_NODELAY` on accepted sockets. Default `true`: request/response traffic suffers from
    /// Nagle's algorithm.
    pub(crate) tcp_nodelay: bool,

    /// How long an HTTP/1.1 connection must be idle before it is parked. Default
    /// [`DEFAULT_HTTP1_PARK_AFTER`](Self::DEFAULT_HTTP1_PARK_AFTER) (1 s); `None` never parks.
    pub(crate) http1_park_after: Option<Duration>,

    /// Whether each request carries the connection's values in its extensions. Default `true`.
    pub(crate) connection_extensions: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Some(Duration::from_secs(30)),
            drain_timeout: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(30)),
            write_stall_timeout: Some(Duration::from_secs(30)),
            max_connections: 10_000,
            max_connections_per_peer: 1_024,
            max_request_head_size: 64 * 1024,
            http2_keep_alive_interval: Some(Duration::from_secs(20)),
            http2_keep_alive_timeout: Duration::from_secs(20),
            tcp_nodelay: true,
            http1_park_after: Some(Self::DEFAULT_HTTP1_PARK_AFTER),
            connection_extensions: true,
        }
    }
}

impl ServerConfig {
    /// The default of [`http1_park_after`](method@Self::http1_park_after): one second, far
    /// longer than the gap between requests of a busy keep-alive client, far shorter than the
    /// 20–30 s an idle pooled connection usually waits.
    pub const DEFAULT_HTTP1_PARK_AFTER: Duration = Duration::from_secs(1);

    /// The shortest [`http1_park_after`](method@Self::http1_park_after) accepted: 10 ms. Parking
    /// sooner would rebuild hyper's connection between most requests of a busy client.
    pub const MIN_HTTP1_PARK_AFTER: Duration = Duration::from_millis(10);

    /// Checks every setting; the error names the first bad one. The server calls it when it
    /// starts serving.
    ///
    /// # Errors
    ///
    /// `http1_park_after` below [`MIN_HTTP1_PARK_AFTER`](Self::MIN_HTTP1_PARK_AFTER).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(after) = self.http1_park_after
            && after < Self::MIN_HTTP1_PARK_AFTER
        {
            return Err(ConfigError::new(
                "http1_park_after",
                "must be at least 10 ms, or None to never park",
            ));
        }
        Ok(())
    }

    /// How long an HTTP/1.1 connection must be idle (no request in progress) before it is
    /// parked. Default [`DEFAULT_HTTP1_PARK_AFTER`](Self::DEFAULT_HTTP1_PARK_AFTER) (1 s);
    /// `None` never parks. At least [`MIN_HTTP1_PARK_AFTER`](Self::MIN_HTTP1_PARK_AFTER).
    ///
    /// hyper keeps an HTTP/1.1 connection's read buffer (8 KiB) and write buffer (8 KiB) for as
    /// long as the connection lives. A parked connection gives them back: the server takes the
    /// socket back from hyper, with any bytes hyper had read but not yet parsed, and waits for
    /// the client's next bytes holding only the socket and its own small state. When bytes
    /// arrive, a fresh hyper
    /// connection is built over the socket and the request is served as usual: the client sees
    /// nothing. The cost falls on the first request after a park: hyper's buffers and
    /// connection state are allocated again (about three allocations), and the connection is
    /// rebuilt once.
    ///
    /// A connection is parked only when nothing can be lost: no request is in progress, hyper
    /// has nothing left to write, and hyper is waiting for the next request. HTTP/2
    /// connections are never parked (their state is the connection). A parked connection is
    /// still bounded by [`idle_timeout`](Self::idle_timeout) and
    /// [`header_read_timeout`](Self::header_read_timeout), counted from when it turned idle,
    /// is still chosen first for eviction, and closes at once on shutdown.
    pub fn http1_park_after(mut self, after: Option<Duration>) -> Self {
        self.http1_park_after = after;
        self
    }

    /// Whether the server puts the connection's values in each request's extensions: its
    /// [`ConnectionInfo`](super::ConnectionInfo), its [`CloseHandle`](super::CloseHandle) and
    /// whatever the [`Acceptor`](super::Acceptor) added (the TLS peer's identity, for one).
    /// Default `true`: services read the caller from them, and close the connection through them.
    ///
    /// `false` is for a service that never reads them, such as a forward proxy that would strip
    /// them unread ([`remove_connection_extensions`](crate::proxy::remove_connection_extensions)):
    /// it saves their heap allocations, four per request. The server still closes, drains and
    /// evicts the connection as before; only the requests stop carrying the values.
    pub fn connection_extensions(mut self, attach: bool) -> Self {
        self.connection_extensions = attach;
        self
    }

    /// How long the [`Acceptor`](super::Acceptor) handshake (TLS) may take. Default 10 s: long
    /// enough for a client on a slow network, short enough that half-open handshakes do not pin
    /// connection slots.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long a client may take to send a complete HTTP/1.1 request head, counted from the moment
    /// the server starts waiting for it: from when the connection opened, or from when the previous
    /// response was written out. Default 30 s (hyper's own default); `None` disables it.
    ///
    /// This is the defence against slow-header ("slowloris") clients, and it also closes HTTP/1.1
    /// keep-alive connections idle for that long between requests (the server waits for the next
    /// head as soon as a response is written out); mesh-core's client therefore closes its idle
    /// HTTP/1.1 connections sooner, after 20 s, so a request never races the server's close. The
    /// close is the idle timeout's (at once between requests, a partial head included). The
    /// connection's own task keeps this deadline with its idle timer, not hyper (whose timer
    /// would be armed and cancelled once per request). The same bound applies to the first bytes of every connection,
    /// which the server reads to tell HTTP/1.1 from HTTP/2 prior knowledge: a client that connects
    /// and sends nothing, or only part of the HTTP/2 preface, is closed after this long. After the
    /// HTTP/2 preface, HTTP/2 connections are bounded by [`idle_timeout`](Self::idle_timeout)
    /// and the keep-alive PINGs.
    pub fn header_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// After shutdown is signalled, how long in-flight requests may take to finish before the
    /// remaining connections are closed. Default 30 s, the usual grace period of a process
    /// supervisor; `None` waits for ever.
    pub fn drain_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// How long a connection may stay open with no request in progress, over either HTTP version.
    /// Default 30 s, the same as [`header_read_timeout`](Self::header_read_timeout) for HTTP/1.1;
    /// `None` disables it.
    ///
    /// A request is in progress from the moment it is read until its response body has been
    /// written out (or dropped), so streaming responses, long polls and gRPC streams never count as
    /// idle. This is what closes an HTTP/2 client that sends its preface and SETTINGS and then
    /// nothing: without it such a connection would hold a slot for ever. The close is graceful
    /// (HTTP/2 `GOAWAY`; HTTP/1.1 closes at once between requests); a peer that does not finish
    /// the `GOAWAY` exchange within one second while still idle is disconnected. Counted in
    /// [`ServerStats::idle_closed`](super::ServerStats::idle_closed).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a write to the client may stay blocked with no progress before the connection is
    /// closed. Default 30 s; `None` disables it.
    ///
    /// This cuts clients that stop reading a response (their TCP window is full): without it such
    /// a client holds the response body, and with it, in a proxy, an upstream connection, for ever.
    /// Only time spent in a blocked write counts: a response that is slow to produce (a long poll,
    /// a server-sent event stream) is never cut, and a slow reader that keeps draining the
    /// socket, however slowly, is not either. HTTP/2 flow control is not covered: a client that
    /// keeps its socket drained but never grants window to one stream stalls only that stream,
    /// which the service's own timeouts must bound. Counted in
    /// [`ServerStats::write_stalls`](super::ServerStats::write_stalls).
    pub fn write_stall_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.write_stall_timeout = timeout;
        self
    }

    /// The most connections served at once. Default 10 000, below common file-descriptor limits.
    ///
    /// When the limit is reached the server stops accepting (backpressure): new connections wait in
    /// the kernel's listen backlog until a connection closes, rather than being accepted and dropped.
    /// A value of 0 is treated as 1.
    ///
    /// When a new connection arrives at the limit and some connections have no request in
    /// progress, the one idle for the longest time is closed to make room (HTTP/2 `GOAWAY`, then
    /// disconnected), so a flood of idle connections cannot lock other clients out. Counted in
    /// [`ServerStats::evicted_idle`](super::ServerStats::evicted_idle). Only when every connection
    /// is busy does the new one wait for a slot.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// The most connections served at once from one client IP address (ports are not told
    /// apart). Default 1 024; a value of 0 is treated as 1, `usize::MAX` disables the cap.
    ///
    /// A connection beyond the cap is closed at once, without being served, and counted in
    /// [`ServerStats::per_peer_refused`](super::ServerStats::per_peer_refused): one client cannot
    /// take every slot of [`max_connections`](Self::max_connections). 1 024 is the number of
    /// connections Envoy opens to one upstream cluster by default, so a well-behaved proxy in
    /// front never meets it, while a single host needs ten times that to fill the default
    /// 10 000 slots. Raise it for listeners whose clients all share one address (behind a NAT or
    /// a load balancer that does not preserve client addresses, or a sidecar's outbound listener,
    /// where every connection comes from the local application).
    pub fn max_connections_per_peer(mut self, max: usize) -> Self {
        self.max_connections_per_peer = max;
        self
    }

    /// The largest request head accepted, in bytes. Default 64 KiB (Envoy's default limit is
    /// 60 KiB); values below 8 KiB are raised to 8 KiB.
    ///
    /// One bound for both versions: HTTP/1.1 requests whose request line and headers do not fit
    /// are answered `431 Request Header Fields Too Large` and the connection closed (this is also
    /// the size of hyper's read buffer); HTTP/2 connections advertise it as
    /// `SETTINGS_MAX_HEADER_LIST_SIZE` (RFC 9113 §6.5.2: decoded names and values plus 32 bytes
    /// per field) and answer larger requests `431` on that stream. A proxy therefore never
    /// forwards a head larger than this, which its upstream would refuse anyway.
    pub fn max_request_head_size(mut self, bytes: usize) -> Self {
        self.max_request_head_size = bytes;
        self
    }

    /// Sends an HTTP/2 PING when nothing has been received for this long, and closes the connection
    /// when the peer does not answer within
    /// [`http2_keep_alive_timeout`](Self::http2_keep_alive_timeout). Default 20 s; `None` turns
    /// PINGs off.
    ///
    /// This finds peers that vanished without closing (a host gone, a NAT entry expired) and peers
    /// that stopped reading, even while they keep streams open. 20 s is below the 30 s
    /// [`idle_timeout`](Self::idle_timeout), so a dead peer with an open stream is found within
    /// 40 s.
    pub fn http2_keep_alive_interval(mut self, interval: Option<Duration>) -> Self {
        self.http2_keep_alive_interval = interval;
        self
    }

    /// How long to wait for the answer to an HTTP/2 keep-alive PING. Default 20 s, generous for
    /// any round trip. Only used when
    /// [`http2_keep_alive_interval`](Self::http2_keep_alive_interval) is set.
    pub fn http2_keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.http2_keep_alive_timeout = timeout;
        self
    }

    /// Sets `TCP_NODELAY` on accepted sockets. Default `true`: request/response traffic suffers from
    /// Nagle's algorithm.
    pub fn tcp_nodelay(mut self, enabled: bool) -> Self {
        self.tcp_nodelay = enabled;
        self
    }

    /// The [`handshake_timeout`](method@Self::handshake_timeout) setting.
    pub fn get_handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The [`header_read_timeout`](method@Self::header_read_timeout) setting.
    pub fn get_header_read_timeout(&self) -> Option<Duration> {
        self.header_read_timeout
    }

    /// The [`idle_timeout`](method@Self::idle_timeout) setting.
    pub fn get_idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// The [`write_stall_timeout`](method@Self::write_stall_timeout) setting.
    pub fn get_write_stall_timeout(&self) -> Option<Duration> {
        self.write_stall_timeout
    }

    /// The [`drain_timeout`](method@Self::drain_timeout) setting.
    pub fn get_drain_timeout(&self) -> Option<Duration> {
        self.drain_timeout
    }

    /// The [`max_connections`](method@Self::max_connections) setting.
    pub fn get_max_connections(&self) -> usize {
        self.max_connections
    }

    /// The [`max_connections_per_peer`](method@Self::max_connections_per_peer) setting.
    pub fn get_max_connections_per_peer(&self) -> usize {
        self.max_connections_per_peer
    }

    /// The [`max_request_head_size`](method@Self::max_request_head_size) setting.
    pub fn get_max_request_head_size(&self) -> usize {
        self.max_request_head_size
    }

    /// The [`http2_keep_alive_interval`](method@Self::http2_keep_alive_interval) setting.
    pub fn get_http2_keep_alive_interval(&self) -> Option<Duration> {
        self.http2_keep_alive_interval
    }

    /// The [`http2_keep_alive_timeout`](method@Self::http2_keep_alive_timeout) setting.
    pub fn get_http2_keep_alive_timeout(&self) -> Duration {
        self.http2_keep_alive_timeout
    }

    /// The [`tcp_nodelay`](method@Self::tcp_nodelay) setting.
    pub fn get_tcp_nodelay(&self) -> bool {
        self.tcp_nodelay
    }

    /// The [`connection_extensions`](method@Self::connection_extensions) setting.
    pub fn get_connection_extensions(&self) -> bool {
        self.connection_extensions
    }

    /// The [`http1_park_after`](method@Self::http1_park_after) setting.
    pub fn get_http1_park_after(&self) -> Option<Duration> {
        self.http1_park_after
    }
}
