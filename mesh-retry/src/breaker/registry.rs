//! [`BreakerRegistry`]: one breaker per endpoint address, for per-endpoint gates under a balancer.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use super::config::BreakerConfig;
use super::handle::{BreakerHandle, WeakBreaker};
use mesh_core::ConfigError;

/// One circuit breaker per endpoint address, made on first use and forgotten when the endpoint
/// leaves: the breakers of a balancer's endpoints, without a `Mutex<HashMap>` of your own.
///
/// Give [`get`](Self::get) to the balancer's endpoint factory (mesh-balance's `MakeEndpoint`) and
/// wrap each endpoint service in a gate-mode
/// [`CircuitBreaker::with_handle`](super::CircuitBreaker::with_handle):
///
/// - **One breaker per address.** While an endpoint's breaker is alive, `get` returns it again, so
///   a service the balancer rebuilds (a changed weight, a failed connection) keeps the breaker's
///   state and history.
/// - **Pruned with the endpoint.** The registry holds its breakers *weakly*: the endpoint service
///   (and any request or response body in flight through it) holds the breaker. When discovery
///   removes the endpoint, the balancer drops its service; once the last request through it has
///   ended the breaker is gone, and the registry forgets the address (nobody has to tell it). An
///   endpoint that comes back later starts with a fresh, closed breaker.
/// - **Metrics per endpoint.** Each breaker's `mesh.breaker.*` points carry the endpoint as
///   `server.address` (IP, string) and `server.port` (int), besides `mesh.breaker.name` from the
///   config, so the breakers of one service no longer overwrite each other's
///   `mesh.breaker.state`. When a breaker is dropped its state gauge is set back to 0 (closed):
///   an endpoint that left reads closed rather than keeping its last state. With cumulative
///   temporality its series is still exported (as mesh-balance's per-endpoint series are) until
///   the meter provider goes; where endpoints churn a lot, use delta temporality or an SDK view.
/// - **Jitter per endpoint.** With [`BreakerConfig::seed`] set, each breaker's RNG is seeded from
///   that seed mixed with its address, so runs are reproducible and endpoints do not reopen in
///   lock-step; without it every breaker seeds from entropy.
///
/// `Clone` shares the registry. The configuration is validated once, by [`new`](Self::new), so
/// `get` cannot fail. Each call locks one mutex; making a new breaker also sweeps the addresses
/// whose breaker is gone (O(endpoints), only when an endpoint is new).
///
/// ```
/// use mesh_retry::breaker::{BreakerConfig, BreakerMode, BreakerRegistry, BreakerState};
///
/// let registry = BreakerRegistry::new(
///     BreakerConfig::new().consecutive_failures(1).mode(BreakerMode::Gate).name("orders"),
/// )
/// .unwrap();
/// let a = "10.0.0.1:8080".parse().unwrap();
/// let breaker = registry.get(a);
/// breaker.try_acquire().unwrap().record_error(&std::io::Error::other("refused"));
/// assert_eq!(registry.get(a).state(), BreakerState::Open); // the same breaker
/// assert_eq!(registry.len(), 1);
/// drop(breaker); // the endpoint's service went away with the endpoint
/// assert!(registry.find(a).is_none());
/// assert!(registry.is_empty());
/// ```
#[derive(Clone)]
pub struct BreakerRegistry {
    shared: Arc<Shared>,
}

struct Shared {
    config: BreakerConfig,
    breakers: Mutex<HashMap<SocketAddr, WeakBreaker>>,
}

impl fmt::Debug for BreakerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerRegistry")
            .field("config", &self.shared.config)
            .field("breakers", &self.len())
            .finish()
    }
}

impl BreakerRegistry {
    /// An empty registry whose breakers are configured by `config` (usually in
    /// [`BreakerMode::Gate`](super::BreakerMode::Gate), for a balancer).
    ///
    /// # Errors
    ///
    /// When `config` does not [validate](BreakerConfig::validate); the error names the key.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                breakers: Mutex::default(),
            }),
        })
    }

    /// The breaker of the endpoint at `addr`: the live one, or a new closed one.
    pub fn get(&self, addr: SocketAddr) -> BreakerHandle {
        let mut breakers = self.lock();
        if let Some(handle) = breakers.get(&addr).and_then(WeakBreaker::upgrade) {
            return handle;
        }
        breakers.retain(|_, breaker| !breaker.is_dead());
        let mut config = self.shared.config.clone();
        config.seed = config.seed.map(|seed| endpoint_seed(seed, addr));
        let handle = BreakerHandle::validated(&config, Some(addr));
        breakers.insert(addr, handle.downgrade());
        handle
    }

    /// The live breaker of the endpoint at `addr`, without making one.
    pub fn find(&self, addr: SocketAddr) -> Option<BreakerHandle> {
        self.lock().get(&addr).and_then(WeakBreaker::upgrade)
    }

    /// The addresses whose breaker is alive, in no particular order.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.lock()
            .iter()
            .filter(|(_, breaker)| !breaker.is_dead())
            .map(|(addr, _)| *addr)
            .collect()
    }

    /// How many breakers are alive.
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .filter(|breaker| !breaker.is_dead())
            .count()
    }

    /// Whether no breaker is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configuration every breaker is made with.
    pub fn config(&self) -> &BreakerConfig {
        &self.shared.config
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, WeakBreaker>> {
        // The map is consistent after any panic (one insert or retain at a time).
        self.shared
            .breakers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// `seed` mixed with `addr` (FNV-1a over the address, then a golden-ratio multiply), so that each
/// endpoint's breaker draws its own reproducible jitter.
fn endpoint_seed(seed: u64, addr: SocketAddr) -> u64 {
    let ip = match addr.ip() {
        IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
        IpAddr::V6(ip) => ip.octets(),
    };
    let hash = ip
        .iter()
        .chain(&addr.port().to_be_bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    seed ^ hash.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
