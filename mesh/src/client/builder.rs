//! [`ClientBuilder`]: the documented outbound stack from a discovery source and a few settings.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mesh_balance::BalanceConfig;
use mesh_balance::discover::StaticDiscover;
use mesh_core::client::{ClientConfig, TcpConnector};
use mesh_core::{BoxError, Endpoint, EndpointKey, Identity};
use mesh_observe::TraceConfig;
use mesh_retry::breaker::{BreakerConfig, BreakerMode, BreakerRegistry};
use mesh_retry::budget::{WindowBudget, WindowBudgetConfig};
use mesh_retry::retry::RetryLimit;
use mesh_retry::retry::{RetryLayer, RetryPolicy};
use mesh_retry::timeout::TimeoutConfig;
use mesh_tls::TlsConnector;
use opentelemetry::metrics::Meter;
use tower::discover::Discover;

use super::Client;
use super::assemble::{EndpointService, Parts, WrapEndpoints};
use super::discovery::boxed;
use crate::ConfigError;

/// The request timeout when none is set: 15 s, Envoy's default route timeout (long enough for
/// ordinary calls, short enough that a hung peer does not hold a caller for ever).
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// Builds a [`Client`]: the outbound stack of DESIGN's picture, in this order.
///
/// ```text
/// ClientTraceLayer      span, traceparent out, http.client.request.duration   `trace`
///  → RequestTimeout     overall deadline, grpc-timeout in and out             `timeout`
///  → Retry + budget     bodies wrapped in ReplayBody here; the deadline       `retry`, `budget`
///                       handed to it directly, not in the extensions
///  → Balance            P2C over PeakEWMA, locality tiers, outlier ejection   `balance`
///  → per endpoint: CircuitBreaker (gate mode, one per endpoint)               `breaker`
///                  → mesh-core HttpClient                                     `http`
///                  → TLS with the endpoint's expected SPIFFE ID, or TCP       `tls`, `identity`
/// ```
///
/// Only a discovery source is required ([`discover`](Self::discover) or
/// [`endpoints`](Self::endpoints)). Every other setting has a default:
///
/// | setting    | default | why |
/// |------------|---------|-----|
/// | `name`     | none | names the breakers' and the balancer's metrics (`mesh.breaker.name`, `mesh.balance.name`, unless the balance config names it); set it to the service's name |
/// | `timeout`  | 15 s ([`DEFAULT_CLIENT_TIMEOUT`]) | Envoy's route timeout; `None` for none (a caller's `grpc-timeout` still applies) |
/// | `retry`    | [`RetryPolicy::default`]: 3 attempts, idempotent requests only, 5xx/`UNAVAILABLE`/connect failures, 1 MiB replay cap | retries absorb a bad endpoint without duplicating side effects |
/// | `budget`   | [`WindowBudgetConfig::default`]: retries ≤ 20 % of requests + 10/s over 10 s | Finagle's and Linkerd's budget: retries cannot multiply an outage |
/// | `balance`  | [`BalanceConfig::default`]: P2C over PeakEWMA, fail fast after 3 s, outlier ejection on | see mesh-balance |
/// | `breaker`  | [`BreakerConfig::default`] (50 % failures over 30 s, ≥ 20 calls; open 5 s) in [`BreakerMode::Gate`] | one per endpoint from a [`BreakerRegistry`]: an open breaker makes its endpoint unready and the balancer routes around it; the mode is always set to gate here |
/// | `http`     | [`ClientConfig::default`]: HTTP/1.1, 64 connections per endpoint, 1 s connect timeout | set `Protocol::Http2` for gRPC |
/// | `tls`      | none: plain TCP | with a [`TlsConnector`], every connection is mTLS and checks the endpoint's expected SPIFFE ID |
/// | `identity` | none | the SPIFFE ID expected of endpoints whose discovery gave none (needs `tls`) |
/// | `trace`    | [`TraceConfig::new`]: global tracer and meter, W3C propagation | |
/// | `meter`    | none: each crate's global meter | when set, every layer records on it |
/// | `seed`     | none: entropy | when set, the balancer, retries and breakers draw from RNGs seeded with it (reproducible tests) |
///
/// [`build`](Self::build) checks everything at once and returns a [`ConfigError`] naming the
/// setting it refuses. It needs no runtime, but the client must be *used* inside a tokio runtime.
#[must_use]
pub struct ClientBuilder {
    discover: Option<super::discovery::BoxDiscover>,
    pub(crate) name: Option<Cow<'static, str>>,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    budget: WindowBudgetConfig,
    pub(crate) balance: BalanceConfig,
    breaker: BreakerConfig,
    pub(crate) http: ClientConfig,
    tls: Option<TlsConnector>,
    identity: Option<String>,
    trace: TraceConfig,
    meter: Option<Meter>,
    seed: Option<u64>,
    wrap_endpoints: Option<WrapEndpoints>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            discover: None,
            name: None,
            timeout: Some(DEFAULT_CLIENT_TIMEOUT),
            retry: RetryPolicy::default(),
            budget: WindowBudgetConfig::default(),
            balance: BalanceConfig::default(),
            breaker: BreakerConfig::default(),
            http: ClientConfig::default(),
            tls: None,
            identity: None,
            trace: TraceConfig::new(),
            meter: None,
            seed: None,
            wrap_endpoints: None,
        }
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("discover", &self.discover.as_ref().map(|_| "…"))
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("budget", &self.budget)
            .field("balance", &self.balance)
            .field("breaker", &self.breaker)
            .field("http", &self.http)
            .field("tls", &self.tls.is_some())
            .field("identity", &self.identity)
            .field("seed", &self.seed)
            .field("wrap_endpoints", &self.wrap_endpoints.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Every default (see the table above); a discovery source must still be given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the endpoints come from: any `tower::discover::Discover` of mesh-core
    /// [`Endpoint`]s keyed by [`EndpointKey`] (mesh-balance's static, runtime, file and DNS
    /// sources, an xDS client, your own stream).
    pub fn discover<D>(mut self, discover: D) -> Self
    where
        D: Discover<Key = EndpointKey, Service = Endpoint> + Send + Unpin + 'static,
        D::Error: Into<BoxError>,
    {
        self.discover = Some(boxed(discover));
        self
    }

    /// A fixed set of endpoints (anything that converts into an [`Endpoint`], such as a
    /// `SocketAddr`): [`discover`](Self::discover) with mesh-balance's `StaticDiscover`.
    pub fn endpoints<I>(self, endpoints: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Endpoint>,
    {
        self.discover(StaticDiscover::new(endpoints.into_iter().map(Into::into)))
    }

    /// The service's name, on the breakers' and the balancer's metrics.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The overall deadline of a request, retries included (`None`: none of its own).
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// Which failures are retried, how often, with what backoff.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How many retries the client may add to its traffic.
    pub fn budget(mut self, budget: WindowBudgetConfig) -> Self {
        self.budget = budget;
        self
    }

    /// The balancer's settings (ejection, locality, slow start, hashing, fail fast).
    pub fn balance(mut self, balance: BalanceConfig) -> Self {
        self.balance = balance;
        self
    }

    /// The settings of each endpoint's breaker; the mode is always [`BreakerMode::Gate`].
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// The HTTP client settings per endpoint (protocol, pool, connect timeout).
    pub fn http(mut self, http: ClientConfig) -> Self {
        self.http = http;
        self
    }

    /// Connects over mTLS with `tls` (an SVID and trust bundles); without it, plain TCP.
    pub fn tls(mut self, tls: TlsConnector) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The SPIFFE ID every endpoint must present when discovery did not give one of its own.
    pub fn identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// The trace layer's settings (tracer, meter, classifier, propagation format).
    pub fn trace(mut self, trace: TraceConfig) -> Self {
        self.trace = trace;
        self
    }

    /// Records every layer's metrics on `meter`.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Seeds every random choice (balancer, retry jitter, breaker jitter), for reproducible runs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Wraps each endpoint's service (the breaker over the HTTP client) with `wrap`, called with
    /// the endpoint whenever the balancer builds its service: per-endpoint counters, a
    /// per-endpoint limit, fault injection in tests.
    ///
    /// The wrapped service is boxed as an [`EndpointService`], whose request body is the retry
    /// layer's [`ReplayBody`](mesh_retry::body::ReplayBody) (the one place it shows); without
    /// this setting nothing is boxed per endpoint. The request's deadline is not in its
    /// extensions here (the timeout layer hands it to the retry layer directly), unless the
    /// caller put a [`Deadline`](mesh_retry::timeout::Deadline) there.
    pub fn wrap_endpoints<F>(mut self, wrap: F) -> Self
    where
        F: Fn(&Endpoint, EndpointService) -> EndpointService + Send + Sync + 'static,
    {
        self.wrap_endpoints = Some(Arc::new(wrap));
        self
    }

    /// The client.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first setting that cannot be used: `discover` (none given),
    /// `identity` (not a SPIFFE ID, or given without `tls`), `budget`, `breaker`, `balance`.
    pub fn build(self) -> Result<Client, ConfigError> {
        let Self {
            discover,
            name,
            timeout,
            mut retry,
            budget,
            mut balance,
            mut breaker,
            http,
            tls,
            identity,
            mut trace,
            meter,
            seed,
            wrap_endpoints,
        } = self;
        let discover = discover.ok_or_else(|| {
            crate::error::invalid(
                "discover",
                "no discovery source: call `discover` or `endpoints`",
            )
        })?;
        let identity = match identity {
            None => None,
            Some(_) if tls.is_none() => {
                return Err(crate::error::invalid(
                    "identity",
                    "an expected identity needs `tls` (plain TCP proves none)",
                ));
            }
            Some(id) => Some(Identity::new(&id).map_err(|e| crate::error::invalid("identity", e))?),
        };
        let mut timeout = TimeoutConfig::default().timeout(timeout);
        breaker = breaker.mode(BreakerMode::Gate);
        if let Some(name) = name {
            if balance.get_name().is_none() {
                balance = balance.name(name.to_string());
            }
            breaker = breaker.name(name);
        }
        if let Some(seed) = seed {
            retry = retry.seed(seed);
            balance = balance.seed(seed);
            breaker = breaker.seed(seed);
        }
        if let Some(meter) = &meter {
            timeout = timeout.meter(meter.clone());
            balance = balance.meter(meter.clone());
            breaker = breaker.meter(meter.clone());
            trace = trace.meter(meter.clone());
        }
        let parts = Parts {
            discover,
            identity,
            http,
            budget: WindowBudget::new(budget).map_err(|e| e.within("budget"))?,
            breakers: BreakerRegistry::new(breaker).map_err(|e| e.within("breaker"))?,
            balance,
            retry: RetryLayer::new(retry).map_err(|e| e.within("retry"))?,
            retry_limit: RetryLimit::unbounded(),
            meter,
            timeout,
            trace,
            wrap_endpoints,
        };
        match tls {
            Some(tls) => parts.assemble(tls),
            None => parts.assemble(TcpConnector::new()),
        }
    }
}
