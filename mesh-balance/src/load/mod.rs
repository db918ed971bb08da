//! How the balancer weighs endpoints against each other: [`LoadStrategy`].
//!
//! The default is **PeakEWMA** (Finagle, Linkerd): each endpoint keeps a moving estimate of its
//! round-trip time, and its cost is `rtt_estimate × (pending + 1) ÷ weight`. The estimate is
//! *peak-sensitive*: a sample above it replaces it at once, so a backend that suddenly slows down is
//! avoided after one slow response; a sample below it only pulls the estimate down gradually, with
//! weight `exp(-elapsed / decay)`. While an endpoint receives no traffic its estimate decays toward
//! zero with the same time constant, so an endpoint that was slow once is tried again later instead
//! of being starved forever.
//!
//! Unlike tower's `PeakEwma`, which stops the clock at the response *head*, the balancer measures
//! until the response **body ends** (or fails, or is dropped): a streaming response occupies its
//! endpoint for as long as it streams, and counts as pending for all that time.
//!
//! [`LoadStrategy::PendingRequests`] (cost `(pending + 1) ÷ weight`, Envoy's least-request) and
//! [`LoadStrategy::RoundRobin`] are the alternatives for workloads where latency says little about
//! load (very uneven request sizes) or where predictability matters more than latency.
//!
//! The weight a cost is divided by is the endpoint's weight scaled by
//! [slow start](crate::slow_start) while the endpoint is new
//! ([`BalanceConfig::slow_start`](crate::BalanceConfig::slow_start), off by default).
//!
//! ```
//! use std::time::Duration;
//!
//! use mesh_balance::{BalanceConfig, LoadStrategy, PeakEwmaConfig};
//!
//! let ewma = PeakEwmaConfig::default().default_rtt(Duration::from_millis(10));
//! let config = BalanceConfig::default().load(LoadStrategy::PeakEwma(ewma));
//! assert_eq!(config.get_load(), &LoadStrategy::PeakEwma(ewma));
//! ```

mod peak_ewma;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub(crate) use peak_ewma::RttEstimate;

/// How the balancer compares the two endpoints it samples; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum LoadStrategy {
    /// Power of two choices by `rtt_estimate × (pending + 1) ÷ weight` (the default).
    PeakEwma(PeakEwmaConfig),
    /// Power of two choices by `(pending + 1) ÷ weight`.
    PendingRequests,
    /// Each eligible endpoint in turn; weights and load are ignored.
    RoundRobin,
}

impl Default for LoadStrategy {
    /// PeakEWMA with [`PeakEwmaConfig::default`]: latency-aware, the Finagle/Linkerd default.
    fn default() -> Self {
        LoadStrategy::PeakEwma(PeakEwmaConfig::default())
    }
}

/// Parameters of the PeakEWMA estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct PeakEwmaConfig {
    /// The estimate a new endpoint starts with. Default 30 ms (Linkerd's; Envoy's contrib uses
    /// 10 ms): high enough that a new endpoint is not flooded before its first sample.
    pub(crate) default_rtt: Duration,
    /// The time constant of the moving average. Default 10 s (Finagle, Linkerd): long enough to
    /// smooth noise, short enough that a recovered endpoint wins traffic back within seconds.
    pub(crate) decay: Duration,
}

impl Default for PeakEwmaConfig {
    fn default() -> Self {
        Self {
            default_rtt: Duration::from_millis(30),
            decay: Duration::from_secs(10),
        }
    }
}

impl PeakEwmaConfig {
    /// The estimate a new endpoint starts with. Default 30 ms (Linkerd's; Envoy's contrib uses
    /// 10 ms): high enough that a new endpoint is not flooded before its first sample.
    #[must_use]
    pub fn default_rtt(mut self, rtt: Duration) -> Self {
        self.default_rtt = rtt;
        self
    }

    /// The time constant of the moving average. Default 10 s (Finagle, Linkerd): long enough to
    /// smooth noise, short enough that a recovered endpoint wins traffic back within seconds.
    #[must_use]
    pub fn decay(mut self, decay: Duration) -> Self {
        self.decay = decay;
        self
    }
}

/// What one endpoint's load is made of: requests in flight and the RTT estimate.
///
/// Shared (in an `Arc`) between the balancer and every in-flight request of the endpoint, so a
/// request that outlives the endpoint's removal still reports into it harmlessly.
#[derive(Debug)]
pub(crate) struct EndpointLoad {
    pending: AtomicU32,
    rtt: Mutex<RttEstimate>,
}

impl EndpointLoad {
    pub(crate) fn new(default_rtt: Duration, now: Instant) -> Self {
        Self {
            pending: AtomicU32::new(0),
            rtt: Mutex::new(RttEstimate::new(default_rtt, now)),
        }
    }

    pub(crate) fn pending(&self) -> u32 {
        self.pending.load(Ordering::Relaxed)
    }

    pub(crate) fn start(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// Ends one request; `rtt` is its round-trip time when it is worth a sample.
    pub(crate) fn end(&self, rtt: Option<(Duration, Instant)>, decay: Duration) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
        if let Some((rtt, now)) = rtt {
            lock(&self.rtt).record(rtt, now, decay);
        }
    }

    /// See [`RttEstimate::reseed`].
    pub(crate) fn reseed(&self, initial: Duration, now: Instant) -> bool {
        lock(&self.rtt).reseed(initial, now)
    }

    /// The RTT estimate as the pick sees it at `now`.
    pub(crate) fn rtt(&self, now: Instant, decay: Duration) -> Duration {
        Duration::from_secs_f64(lock(&self.rtt).at(now, decay).max(0.0) / 1e9)
    }

    /// The cost of one more request under `strategy`, before dividing by the weight.
    pub(crate) fn cost(&self, strategy: &LoadStrategy, now: Instant) -> f64 {
        let pending = f64::from(self.pending()) + 1.0;
        match strategy {
            LoadStrategy::PeakEwma(ewma) => lock(&self.rtt).at(now, ewma.decay) * pending,
            LoadStrategy::PendingRequests | LoadStrategy::RoundRobin => pending,
        }
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain numbers).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
