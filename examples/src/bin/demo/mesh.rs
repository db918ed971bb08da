//! The demo's topology (two clouds, two trust domains, five backends) and the client stack that
//! sends traffic to it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh::EndpointService;
use mesh_balance::discover::DiscoverHandle;
use mesh_balance::{BalanceConfig, BalanceStatus, LocalityConfig, OutlierConfig};
use mesh_core::client::{ClientConfig, Protocol};
use mesh_core::{BoxError, Endpoint, Locality};
use mesh_examples::stats::EndpointStats;
use mesh_retry::breaker::{BreakerConfig, BreakerRegistry, BreakerState};
use mesh_retry::budget::{WindowBudget, WindowBudgetConfig};
use mesh_retry::retry::{ExponentialBackoff, RetryPolicy};
use mesh_tls::test_ca::TestCa;
use mesh_tls::{TlsAcceptor, TlsConnector};
use opentelemetry::metrics::Meter;

use crate::backend::Behaviour;
use crate::tally::Tally;

/// One cloud: a region with one zone and its own SPIFFE trust domain.
#[derive(Debug)]
pub(crate) struct Cloud {
    pub(crate) name: &'static str,
    pub(crate) zone: &'static str,
    pub(crate) trust_domain: &'static str,
}

/// Where the client runs, and the failover target.
pub(crate) const CLOUDS: [Cloud; 2] = [
    Cloud {
        name: "cloud-a",
        zone: "cloud-a-1",
        trust_domain: "cloud-a.example",
    },
    Cloud {
        name: "cloud-b",
        zone: "cloud-b-1",
        trust_domain: "cloud-b.example",
    },
];

/// The client's cloud: [`CLOUDS`]`[LOCAL]`.
pub(crate) const LOCAL: usize = 0;

/// One backend instance.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) name: &'static str,
    /// Index into [`CLOUDS`].
    pub(crate) cloud: usize,
    pub(crate) behaviour: Behaviour,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Three instances in the local cloud (one slow, one failing in bursts), two in the remote one
/// (a few milliseconds further away).
pub(crate) const INSTANCES: [Instance; 5] = [
    Instance {
        name: "a1",
        cloud: 0,
        behaviour: Behaviour::Healthy(ms(2)),
    },
    Instance {
        name: "a2-slow",
        cloud: 0,
        behaviour: Behaviour::Slow {
            delay: ms(8),
            slow: ms(100),
        },
    },
    Instance {
        name: "a3-flaky",
        cloud: 0,
        behaviour: Behaviour::Flaky(ms(2)),
    },
    Instance {
        name: "b1",
        cloud: 1,
        behaviour: Behaviour::Healthy(ms(8)),
    },
    Instance {
        name: "b2",
        cloud: 1,
        behaviour: Behaviour::Healthy(ms(8)),
    },
];

/// The SPIFFE ID of instance `i`.
pub(crate) fn spiffe_id(i: usize) -> String {
    let instance = &INSTANCES[i];
    format!(
        "spiffe://{}/ns/demo/sa/{}",
        CLOUDS[instance.cloud].trust_domain, instance.name
    )
}

/// The locality of cloud `c`.
pub(crate) fn locality(c: usize) -> Locality {
    Locality::new(CLOUDS[c].name, CLOUDS[c].zone, "")
}

/// The two trust domains' CAs: each issues the SVIDs of its own cloud; everyone trusts both roots,
/// kept apart per domain (a cloud's CA can only vouch for its own domain's IDs).
pub(crate) struct Identities {
    cas: [TestCa; 2],
    bundles: Arc<mesh_tls::TrustBundleSet>,
}

impl Identities {
    pub(crate) fn new() -> Self {
        let cas = CLOUDS.map(|c| TestCa::new(c.trust_domain));
        let bundles = TestCa::bundles(&cas);
        Self { cas, bundles }
    }

    /// The acceptor of backend `i`: its own SVID, both clouds' roots.
    pub(crate) fn acceptor(&self, i: usize) -> TlsAcceptor {
        let instance = &INSTANCES[i];
        let path = format!("/ns/demo/sa/{}", instance.name);
        let svid = self.cas[instance.cloud].issue(&path).svid();
        TlsAcceptor::new(svid, self.bundles.clone())
    }

    /// The client's connector: an SVID of the local cloud, both clouds' roots; it checks each
    /// endpoint's expected SPIFFE ID.
    pub(crate) fn connector(&self) -> TlsConnector {
        let svid = self.cas[LOCAL].issue("/ns/demo/sa/client").svid();
        TlsConnector::new(svid, self.bundles.clone()).require_endpoint_identity(true)
    }
}

/// What the stack reports to the live table, per endpoint (indexed like [`INSTANCES`]).
pub(crate) struct EndpointProbes {
    pub(crate) attempts: Vec<Arc<EndpointStats>>,
    addrs: Vec<SocketAddr>,
    breakers: BreakerRegistry,
}

impl EndpointProbes {
    /// The state of endpoint `i`'s breaker; one the registry no longer holds (its endpoint left)
    /// reads closed, as its metric does.
    pub(crate) fn breaker_state(&self, i: usize) -> BreakerState {
        self.breakers
            .find(self.addrs[i])
            .map_or(BreakerState::Closed, |breaker| breaker.state())
    }
}

/// The whole client: the facade's, built by [`build_stack`].
pub(crate) type Client = mesh::Client;

/// The client stack and the handles the table reads.
pub(crate) struct Stack {
    pub(crate) client: Client,
    pub(crate) status: Box<dyn Fn() -> Option<BalanceStatus> + Send>,
    pub(crate) budget: WindowBudget,
    pub(crate) probes: EndpointProbes,
}

/// The retry budget: retries ≤ 20 % of requests + 10 per second, over 10 s (the defaults).
pub(crate) const BUDGET_RATIO_PERCENT: u64 = 20;
pub(crate) const BUDGET_MIN_PER_SEC: u32 = 10;
pub(crate) const BUDGET_WINDOW_SECS: u64 = 10;

/// Builds observe → timeout → retry (+ budget) → balancer (locality tiers, ejection) → per
/// endpoint: tally → breaker (gate) → HTTP client over mTLS, with one `mesh::ClientBuilder` call.
pub(crate) fn build_stack(
    endpoints: &[Endpoint],
    identities: &Identities,
    meter: &Meter,
    seed: u64,
) -> Result<Stack, BoxError> {
    // Per-endpoint counters exist before the balancer: the factory runs again when an endpoint's
    // service fails, and the rebuilt service must count into the same counters.
    let attempts: Vec<Arc<EndpointStats>> = endpoints.iter().map(|_| Arc::default()).collect();
    let by_addr: HashMap<SocketAddr, Arc<EndpointStats>> = endpoints
        .iter()
        .map(Endpoint::addr)
        .zip(attempts.iter().cloned())
        .collect();

    let discovery = DiscoverHandle::new();
    discovery.set(endpoints.iter().cloned());
    let outliers = OutlierConfig::default()
        .consecutive_failures(5)
        .base_ejection(ms(3000))
        .max_ejection(ms(10_000))
        // Let all three local endpoints be ejected when the local cloud goes down, and keep the
        // balancer out of panic mode while the remote cloud alone is healthy (2 of 5 = 40 %).
        .max_ejected_share(0.6)
        .panic_threshold(0.3);
    let client = Client::builder()
        .discover(discovery.discover())
        .name("demo")
        .timeout(ms(1000))
        .retry(
            RetryPolicy::default()
                .max_attempts(3)
                .backoff(ExponentialBackoff::new(ms(5), ms(50))?)
                .per_try_timeout(Some(ms(300))),
        )
        .budget(
            WindowBudgetConfig::default()
                .ratio(BUDGET_RATIO_PERCENT as f64 / 100.0)
                .min_per_sec(BUDGET_MIN_PER_SEC)
                .window(Duration::from_secs(BUDGET_WINDOW_SECS)),
        )
        .balance(
            BalanceConfig::default()
                .outliers(outliers)
                .locality(LocalityConfig::new(locality(LOCAL)))
                .fail_fast_after(ms(1000)),
        )
        .breaker(breaker_config())
        .http(
            ClientConfig::default()
                .protocol(Protocol::Http2)
                .connect_timeout(ms(500)),
        )
        .tls(identities.connector())
        .meter(meter.clone())
        .seed(seed)
        .wrap_endpoints(move |ep, service| {
            let stats = by_addr.get(&ep.addr()).cloned().unwrap_or_default();
            EndpointService::new(Tally::new(service, stats))
        })
        .build()?;

    let watched = client.clone();
    // The handle keeps discovery alive (dropping it would end the stream).
    let status = Box::new(move || {
        let _ = &discovery;
        watched.status()
    });
    let budget = client
        .budget()
        .cloned()
        .ok_or("the builder's client has a budget")?;
    let breakers = client
        .breakers()
        .cloned()
        .ok_or("the builder's client has breakers")?;
    Ok(Stack {
        client,
        status,
        budget,
        probes: EndpointProbes {
            attempts,
            addrs: endpoints.iter().map(Endpoint::addr).collect(),
            breakers,
        },
    })
}

/// A per-endpoint gate: opens on 50 % failures over the last 10 calls (at least 5); stays open
/// 1 s, doubling per re-open up to 5 s. (The builder puts it in gate mode, seeds it and names it.)
fn breaker_config() -> BreakerConfig {
    BreakerConfig::new()
        .failure_rate(mesh_retry::breaker::SlidingWindow::Calls(10), 5, 0.5)
        .open_duration(ms(1000), 2.0, ms(5000))
}
