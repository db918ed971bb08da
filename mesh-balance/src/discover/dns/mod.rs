//! Endpoints from DNS: A/AAAA for `host:port`, or SRV, re-resolved at the record TTL.

mod resolve;
mod target;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use mesh_core::{Endpoint, EndpointKey, Identity, Locality};
use opentelemetry::metrics::Meter;
use tower::discover::Change;

use self::resolve::{EndpointTemplate, Resolution, resolve};
pub use self::target::DnsTarget;
use super::report::ErrorReporter;
use super::{DiscoverError, SnapshotDiffer};

/// Settings for [`DnsDiscover`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DnsDiscoverConfig {
    /// The shortest wait between two resolutions, whatever the TTL. Default 5 s: a TTL of 0 or 1 s
    /// (common behind service-discovery DNS) would otherwise mean a query storm from every client;
    /// 5 s is the floor Envoy and gRPC clients use in practice for re-resolution. Values below
    /// 100 ms are raised to 100 ms, so a TTL-0 record can never turn into a query loop.
    pub(crate) min_ttl: Duration,
    /// The longest wait between two resolutions. Default 300 s: a record with a one-day TTL must
    /// not hide a changed endpoint set for a day; 300 s matches the outlier-ejection cap
    /// (Envoy's max ejection time), the longest this crate otherwise waits.
    pub(crate) max_ttl: Duration,
    /// How many empty answers in a row (NXDOMAIN, or no A/AAAA/SRV records) it takes before the
    /// set is emptied. Default 2: one empty answer — a zone being reloaded, a split-horizon
    /// glitch — keeps the last set and triggers a confirming lookup after
    /// [`min_ttl`](Self::ttl_bounds); a second one in a row empties the set, so a real removal of the
    /// name takes effect within one `min_ttl`. 1 empties at once. 0 is treated as 1.
    pub(crate) empty_after: u32,
    /// Whether a failed lookup also yields an `Err` item (default `true`). Failures are always
    /// logged and counted; turn this off for a consumer that stops on the first error, such as
    /// tower's `Balance`.
    pub(crate) yield_errors: bool,
    /// The locality given to every discovered endpoint (DNS carries none). Default unknown.
    pub(crate) locality: Locality,
    /// The SPIFFE ID every discovered endpoint must present, if any. Default none.
    pub(crate) identity: Option<Identity>,
    /// Where the `mesh.discovery.errors` counter is registered; default
    /// `opentelemetry::global::meter("mesh-balance")`.
    pub(crate) meter: Option<Meter>,
}

impl Default for DnsDiscoverConfig {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(5),
            max_ttl: Duration::from_secs(300),
            empty_after: 2,
            yield_errors: true,
            locality: Locality::default(),
            identity: None,
            meter: None,
        }
    }
}

impl DnsDiscoverConfig {
    /// The shortest and the longest wait between two resolutions, whatever the TTL (swapped if
    /// reversed).
    ///
    /// `min` defaults to 5 s: a TTL of 0 or 1 s (common behind service-discovery DNS) would
    /// otherwise mean a query storm from every client; 5 s is the floor Envoy and gRPC clients
    /// use in practice for re-resolution. Values below 100 ms are raised to 100 ms, so a TTL-0
    /// record can never turn into a query loop.
    ///
    /// `max` defaults to 300 s: a record with a one-day TTL must not hide a changed endpoint set
    /// for a day; 300 s matches the outlier-ejection cap (Envoy's max ejection time), the longest
    /// this crate otherwise waits.
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ttl = min.min(max);
        self.max_ttl = max.max(min);
        self
    }

    /// How many empty answers in a row (NXDOMAIN, or no A/AAAA/SRV records) it takes before the
    /// set is emptied. Default 2: one empty answer — a zone being reloaded, a split-horizon
    /// glitch — keeps the last set and triggers a confirming lookup after
    /// [`min_ttl`](Self::ttl_bounds); a second one in a row empties the set, so a real removal of the
    /// name takes effect within one `min_ttl`. 1 empties at once. 0 is treated as 1.
    pub fn empty_after(mut self, answers: u32) -> Self {
        self.empty_after = answers;
        self
    }

    /// Whether a failed lookup also yields an `Err` item (default `true`). Failures are always
    /// logged and counted; turn this off for a consumer that stops on the first error, such as
    /// tower's `Balance`.
    pub fn yield_errors(mut self, yield_errors: bool) -> Self {
        self.yield_errors = yield_errors;
        self
    }

    /// The locality given to every discovered endpoint (DNS carries none). Default unknown.
    pub fn locality(mut self, locality: Locality) -> Self {
        self.locality = locality;
        self
    }

    /// The SPIFFE ID every discovered endpoint must present, if any. Default none.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Where the `mesh.discovery.errors` counter is registered; default
    /// `opentelemetry::global::meter("mesh-balance")`.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }
}

/// The smallest wait between two rounds, whatever the configuration says.
const MIN_TTL_FLOOR: Duration = Duration::from_millis(100);

/// Resolution state carried into and out of each round's future.
#[derive(Debug)]
struct Round {
    resolver: TokioResolver,
    target: Arc<DnsTarget>,
    delay: Option<Duration>,
}

type RoundFuture = Pin<Box<dyn Future<Output = (Round, Resolution)> + Send + 'static>>;

/// Discovery from DNS: the A and AAAA addresses of a host (with a fixed port), or the targets of
/// an SRV name (with their ports and weights), re-resolved when the answer's TTL runs out.
///
/// **Timing.** The first lookup runs on the first poll. The next one waits for the smallest TTL
/// among the records used (SRV, CNAME, A, AAAA), clamped to
/// [[`min_ttl`](DnsDiscoverConfig::ttl_bounds), [`max_ttl`](DnsDiscoverConfig::ttl_bounds)] (defaults
/// 5 s and 300 s). Waits use the tokio clock. Each lookup bypasses the resolver's cache for the
/// names it queries, so the TTL comes from the server.
///
/// **Failures keep the last good set.** A lookup that fails (timeout, SERVFAIL, refused) is
/// logged with `tracing::warn!`, counted in `mesh.discovery.errors` (attribute
/// `mesh.discovery.source = "dns"`) and yielded as `Err(`[`DiscoverError::DnsLookup`]`)` unless
/// [`yield_errors`](DnsDiscoverConfig::yield_errors) is off; no endpoint is removed. It is retried
/// after `min_ttl`, doubling with each further failure up to `max_ttl`. The stream never ends, so
/// a consumer should log an `Err` item and keep polling (mesh-balance's balancer does).
///
/// **Empty answers** (NXDOMAIN or no records) are not failures but are not trusted at once: see
/// [`empty_after`](DnsDiscoverConfig::empty_after).
///
/// Changes are the diff between successive answers (see [`SnapshotDiffer`]): an address that
/// stays produces nothing, an SRV weight change an `Insert` that replaces the endpoint, and only
/// an address gone from DNS a `Remove`.
///
/// Each round allocates one boxed future, off the request path.
///
/// ```no_run
/// use mesh_balance::discover::{DnsDiscover, DnsDiscoverConfig, DnsTarget};
///
/// # fn main() -> Result<(), mesh_balance::discover::DiscoverError> {
/// let nameserver = "10.96.0.10:53".parse().unwrap();
/// let discover = DnsDiscover::with_nameserver(
///     DnsTarget::srv("_http._tcp.orders.shop.svc.cluster.local.")?,
///     nameserver,
///     DnsDiscoverConfig::default(),
/// )?;
/// # drop(discover); Ok(()) }
/// ```
pub struct DnsDiscover {
    target: Arc<DnsTarget>,
    round: Option<Round>,
    resolving: Option<RoundFuture>,
    config: DnsDiscoverConfig,
    template: EndpointTemplate,
    reporter: ErrorReporter,
    differ: SnapshotDiffer,
    error: Option<DiscoverError>,
    failures: u32,
    empty_answers: u32,
}

impl DnsDiscover {
    /// Resolves `target` with `resolver` (any hickory-resolver configuration: system, DoT, …).
    ///
    /// The resolver's own TTL clamps and cache do not change the timing: each round clears the
    /// cache entries of the names it queries.
    pub fn new(target: DnsTarget, resolver: TokioResolver, config: DnsDiscoverConfig) -> Self {
        let target = Arc::new(target);
        let reporter = ErrorReporter::new(config.meter.as_ref(), "dns", config.yield_errors);
        let template = EndpointTemplate {
            locality: config.locality.clone(),
            identity: config.identity.clone(),
        };
        Self {
            round: Some(Round {
                resolver,
                target: target.clone(),
                delay: None,
            }),
            target,
            resolving: None,
            config,
            template,
            reporter,
            differ: SnapshotDiffer::new(),
            error: None,
            failures: 0,
            empty_answers: 0,
        }
    }

    /// Resolves `target` by asking one name server only, over UDP (TCP for truncated answers),
    /// without the system hosts file or search domains.
    ///
    /// Fails only if hickory-resolver cannot build its client (possible when a TLS feature of
    /// hickory is enabled elsewhere in the build and its TLS setup fails).
    pub fn with_nameserver(
        target: DnsTarget,
        nameserver: SocketAddr,
        config: DnsDiscoverConfig,
    ) -> Result<Self, DiscoverError> {
        let mut udp = ConnectionConfig::udp();
        udp.port = nameserver.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = nameserver.port();
        let server = NameServerConfig::new(nameserver.ip(), true, vec![udp, tcp]);
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![server]),
            TokioRuntimeProvider::default(),
        );
        builder.options_mut().use_hosts_file = ResolveHosts::Never;
        let resolver = builder.build().map_err(|e| {
            DiscoverError::dns_lookup(&target, format_args!("cannot build the resolver: {e}"))
        })?;
        Ok(Self::new(target, resolver, config))
    }

    /// The name being resolved.
    pub fn target(&self) -> &DnsTarget {
        &self.target
    }

    /// The endpoints of the last good answer (after every change already yielded or queued).
    pub fn endpoints(&self) -> impl ExactSizeIterator<Item = &Endpoint> {
        self.differ.endpoints()
    }

    /// The wait before the next round, after `resolution`; updates the streak counters.
    fn absorb(&mut self, resolution: Resolution) -> Duration {
        let min = self.config.min_ttl.max(MIN_TTL_FLOOR);
        let max = self.config.max_ttl.max(min);
        match resolution {
            Resolution::Found { addrs, ttl } => {
                self.failures = 0;
                self.empty_answers = 0;
                let endpoints = addrs
                    .into_iter()
                    .map(|(addr, weight)| self.template.endpoint(addr, weight));
                let changes = self.differ.update(endpoints);
                tracing::debug!(target = %self.target, changes, endpoints = self.differ.len(), ?ttl, "DNS answer");
                ttl.clamp(min, max)
            }
            Resolution::Empty { negative_ttl } => {
                self.failures = 0;
                self.empty_answers = self.empty_answers.saturating_add(1);
                if self.empty_answers >= self.config.empty_after.max(1) {
                    self.differ.update([]);
                    negative_ttl.unwrap_or(min).clamp(min, max)
                } else {
                    tracing::warn!(
                        target = %self.target,
                        kept_endpoints = self.differ.len(),
                        "DNS answer is empty; keeping the last set until confirmed"
                    );
                    min
                }
            }
            Resolution::Failed(error) => {
                self.failures = self.failures.saturating_add(1);
                self.error = self.reporter.report(error, self.differ.len());
                // min, 2·min, 4·min … capped at max.
                let doublings = (self.failures - 1).min(31);
                min.saturating_mul(1 << doublings).min(max)
            }
        }
    }
}

impl Stream for DnsDiscover {
    type Item = Result<Change<EndpointKey, Endpoint>, DiscoverError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(change) = this.differ.next_change() {
                return Poll::Ready(Some(Ok(change)));
            }
            if let Some(error) = this.error.take() {
                return Poll::Ready(Some(Err(error)));
            }
            if this.resolving.is_none()
                && let Some(round) = this.round.take()
            {
                this.resolving = Some(Box::pin(async move {
                    if let Some(delay) = round.delay {
                        tokio::time::sleep(delay).await;
                    }
                    let resolution = resolve(&round.resolver, &round.target).await;
                    (round, resolution)
                }));
            }
            let Some(resolving) = this.resolving.as_mut() else {
                return Poll::Pending;
            };
            let (mut round, resolution) = std::task::ready!(resolving.as_mut().poll(cx));
            this.resolving = None;
            round.delay = Some(this.absorb(resolution));
            this.round = Some(round);
        }
    }
}

impl fmt::Debug for DnsDiscover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsDiscover")
            .field("target", &self.target)
            .field("endpoints", &self.differ.len())
            .field("failures", &self.failures)
            .field("empty_answers", &self.empty_answers)
            .finish_non_exhaustive()
    }
}
