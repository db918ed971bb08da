//! The settings of one control-plane connection.

use std::time::Duration;

use mesh_core::Locality;
use mesh_tls::TlsConnector;
use opentelemetry::metrics::Meter;

use crate::XdsTls;

/// The default [`XdsConfig::max_response_bytes`]: 16 MiB.
///
/// A `ClusterLoadAssignment` costs roughly 30–100 bytes per endpoint, so 10 000 endpoints fit in
/// well under 1 MiB; 16 MiB leaves room for many clusters in one response while bounding what a broken
/// or hostile control plane can make us allocate.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The default [`XdsConfig::max_endpoints_per_cluster`]: 20 000, twice the largest cluster the
/// project benchmarks (10 000 endpoints).
pub const DEFAULT_MAX_ENDPOINTS_PER_CLUSTER: usize = 20_000;

/// Which variant of the ADS protocol a client speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// State-of-the-World (`StreamAggregatedResources`): every response carries every
    /// subscribed resource of its type. Spoken by every control plane; the default.
    #[default]
    StateOfTheWorld,
    /// Delta / incremental (`DeltaAggregatedResources`): a response carries only what changed
    /// and the names of what was removed, so a large mesh does not resend every cluster on
    /// every change.
    Delta,
}

/// How to reach a control plane and who we are to it.
///
/// ```
/// use mesh_core::Locality;
/// use mesh_xds::XdsConfig;
///
/// let config = XdsConfig::new("http://127.0.0.1:18000", "node-1")
///     .node_cluster("orders")
///     .locality(Locality::new("eu-west", "eu-west-1a", ""))
///     .seed(7);
/// assert_eq!(config.node_id, "node-1");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct XdsConfig {
    /// The control plane's gRPC URI, e.g. `http://istiod:15010`. Default: empty (must be set).
    pub server: String,
    /// `node.id`: how the control plane picks our snapshot. Default: empty (must be set).
    pub node_id: String,
    /// `node.cluster`: the service this client runs as. Default: empty.
    pub node_cluster: String,
    /// `node.locality`: where this client runs. Default: unknown.
    pub locality: Locality,
    /// State-of-the-World or Delta. Default [`Protocol::StateOfTheWorld`].
    pub protocol: Protocol,
    /// The largest response accepted, in bytes; larger ones fail the gRPC decode (the stream
    /// is then re-established after a backoff). Default [`DEFAULT_MAX_RESPONSE_BYTES`].
    pub max_response_bytes: usize,
    /// The most endpoints one `ClusterLoadAssignment` may carry; more is NACKed.
    /// Default [`DEFAULT_MAX_ENDPOINTS_PER_CLUSTER`].
    pub max_endpoints_per_cluster: usize,
    /// How long one TCP + HTTP/2 connect to the control plane may take. Default 5 s.
    pub connect_timeout: Duration,
    /// The first reconnect delay (before jitter). Default 1 s (gRPC's connection backoff).
    pub backoff_base: Duration,
    /// The longest reconnect delay (before jitter). Default 120 s (gRPC's connection backoff).
    pub backoff_max: Duration,
    /// The seed of the backoff jitter; `None` seeds from the thread's RNG. Default `None`.
    pub seed: Option<u64>,
    /// Where the client's [metrics](crate#metrics) go. Default `None`:
    /// `opentelemetry::global::meter("mesh-xds")`, a no-op until the application installs a
    /// provider.
    pub meter: Option<Meter>,
    /// Mutual TLS to the control plane (see [`XdsTls`]). Default `None`: plaintext HTTP/2, for a
    /// control plane on the same host or behind a trusted network.
    pub tls: Option<XdsTls>,
}

impl Default for XdsConfig {
    fn default() -> Self {
        Self {
            server: String::new(),
            node_id: String::new(),
            node_cluster: String::new(),
            locality: Locality::default(),
            protocol: Protocol::default(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_endpoints_per_cluster: DEFAULT_MAX_ENDPOINTS_PER_CLUSTER,
            connect_timeout: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(120),
            seed: None,
            meter: None,
            tls: None,
        }
    }
}

impl XdsConfig {
    /// A config for `server` as node `node_id`, everything else at its default.
    pub fn new(server: impl Into<String>, node_id: impl Into<String>) -> Self {
        Self::default().server(server).node_id(node_id)
    }

    /// Sets [`server`](Self::server).
    #[must_use]
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.server = server.into();
        self
    }

    /// Sets [`node_id`](Self::node_id).
    #[must_use]
    pub fn node_id(mut self, node_id: impl Into<String>) -> Self {
        self.node_id = node_id.into();
        self
    }

    /// Sets [`node_cluster`](Self::node_cluster).
    #[must_use]
    pub fn node_cluster(mut self, node_cluster: impl Into<String>) -> Self {
        self.node_cluster = node_cluster.into();
        self
    }

    /// Sets [`locality`](Self::locality).
    #[must_use]
    pub fn locality(mut self, locality: Locality) -> Self {
        self.locality = locality;
        self
    }

    /// Sets [`protocol`](Self::protocol).
    #[must_use]
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets [`max_response_bytes`](Self::max_response_bytes).
    #[must_use]
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Sets [`max_endpoints_per_cluster`](Self::max_endpoints_per_cluster).
    #[must_use]
    pub fn max_endpoints_per_cluster(mut self, endpoints: usize) -> Self {
        self.max_endpoints_per_cluster = endpoints;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`backoff_base`](Self::backoff_base).
    #[must_use]
    pub fn backoff_base(mut self, base: Duration) -> Self {
        self.backoff_base = base;
        self
    }

    /// Sets [`backoff_max`](Self::backoff_max).
    #[must_use]
    pub fn backoff_max(mut self, max: Duration) -> Self {
        self.backoff_max = max;
        self
    }

    /// Sets [`seed`](Self::seed).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets [`meter`](Self::meter).
    #[must_use]
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Connects with mutual TLS through mesh-tls: presents `connector`'s SVID and accepts only a
    /// control plane that proves `server_identity` (a SPIFFE ID such as
    /// `spiffe://cluster.local/ns/istio-system/sa/istiod`). See [`XdsTls`] for what is checked.
    ///
    /// The [`server`](Self::server) URI should then use `https`; its host is dialled, not
    /// verified.
    #[must_use]
    pub fn tls(mut self, connector: TlsConnector, server_identity: impl Into<String>) -> Self {
        self.tls = Some(XdsTls::new(connector, server_identity));
        self
    }

    /// Checks the settings, naming the first bad field.
    ///
    /// Besides the bounds, it refuses an `https` server without [`tls`](Self::tls) (a plaintext
    /// client on a TLS port would only see the connection fail) and a
    /// [`tls`](Self::tls) server identity that is not a SPIFFE ID.
    pub fn validate(&self) -> Result<(), crate::XdsError> {
        let bad = |field: &'static str, reason: &'static str| {
            Err(crate::XdsError::Config { field, reason })
        };
        if self.server.is_empty() {
            return bad("server", "must name the control plane's URI");
        }
        if self.node_id.is_empty() {
            return bad("node_id", "must not be empty");
        }
        if self.max_response_bytes == 0 {
            return bad("max_response_bytes", "must be at least 1");
        }
        if self.max_endpoints_per_cluster == 0 {
            return bad("max_endpoints_per_cluster", "must be at least 1");
        }
        if self.tls.is_none() && self.server.starts_with("https:") {
            return bad("server", "is https but no tls settings are given");
        }
        if self
            .tls
            .as_ref()
            .is_some_and(|tls| !tls.identity_is_valid())
        {
            return bad(
                "tls.server_identity",
                "must be a SPIFFE ID (spiffe://trust-domain/path)",
            );
        }
        if self.backoff_base.is_zero() || self.backoff_max < self.backoff_base {
            return bad("backoff_base", "must be above 0 and at most backoff_max");
        }
        Ok(())
    }
}
