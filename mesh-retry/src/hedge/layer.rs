//! The hedge layer and its settings.

use std::sync::Arc;
use std::time::Duration;

use mesh_core::ConfigError;
use mesh_core::classify::MeshClassifier;
use opentelemetry::metrics::{Counter, Meter};
use tower_layer::Layer;

use super::{Hedge, LatencyHistogram};
use crate::body::DEFAULT_REPLAY_CAP;
use crate::budget::{RetryBudget, WindowBudget};

/// When the extra attempt goes out.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum HedgeDelay {
    /// A fixed delay after the first attempt (gRPC's `hedgingDelay`).
    Fixed(Duration),
    /// The given percentile (0 to 1) of recent latencies: with 0.95, about 5 % of requests are
    /// hedged, the extra load Finagle's backup requests aim for. No hedging until `min_samples`
    /// latencies are known.
    Percentile {
        /// The percentile, 0 to 1.
        percentile: f64,
        /// Latencies needed before the percentile is trusted.
        min_samples: u64,
    },
}

/// Settings of a [`HedgeLayer`].
///
/// | Setting      | Default            | Why                                                  |
/// |--------------|--------------------|------------------------------------------------------|
/// | `delay`      | p95, 50 samples    | about 5 % extra load; 50 samples make p95 meaningful  |
/// | `window`     | 10 s               | histogram rotation, the budget window's length        |
/// | `replay_cap` | 64 KiB             | Linkerd and Pingora's replay buffer                   |
/// | `meter`      | `global::meter("mesh-retry")` | the application picks the provider        |
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HedgeConfig {
    delay: HedgeDelay,
    window: Duration,
    replay_cap: usize,
    meter: Option<Meter>,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        Self {
            delay: HedgeDelay::Percentile {
                percentile: 0.95,
                min_samples: 50,
            },
            window: Duration::from_secs(10),
            replay_cap: DEFAULT_REPLAY_CAP,
            meter: None,
        }
    }
}

impl HedgeConfig {
    /// When the extra attempt goes out.
    #[must_use]
    pub fn delay(mut self, delay: HedgeDelay) -> Self {
        self.delay = delay;
        self
    }

    /// How often the latency histogram rotates (see [`LatencyHistogram`]).
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The replay buffer cap; a larger body is never hedged.
    #[must_use]
    pub fn replay_cap(mut self, cap: usize) -> Self {
        self.replay_cap = cap;
        self
    }

    /// Records metrics through `meter`.
    #[must_use]
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Checks every value; the error names the first bad key and why. [`HedgeLayer::new`]
    /// calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let HedgeDelay::Percentile { percentile, .. } = self.delay
            && !(0.0..=1.0).contains(&percentile)
        {
            return Err(ConfigError::new(
                "delay.percentile",
                "must be a number between 0 and 1",
            ));
        }
        if self.window.is_zero() {
            return Err(ConfigError::new("window", "must be longer than zero"));
        }
        Ok(())
    }
}

/// Sends one extra attempt of a slow idempotent request, and answers with the first success;
/// builds [`Hedge`] services. See the [module docs](super).
///
/// Metrics (OpenTelemetry counters): `mesh.hedge.sent` (extra attempts sent), `mesh.hedge.won`
/// (responses that came from the extra attempt), `mesh.hedge.budget_exhausted` (hedges the budget
/// refused); see the [crate's metric table](crate#metrics).
#[derive(Clone, Debug)]
pub struct HedgeLayer {
    config: HedgeConfig,
    budget: Arc<dyn RetryBudget>,
    deposit: bool,
    histogram: Option<LatencyHistogram>,
}

impl HedgeLayer {
    /// A layer with these settings and a [`WindowBudget::default`] of its own; fails when the
    /// config does not [validate](HedgeConfig::validate).
    pub fn new(config: HedgeConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            budget: Arc::new(WindowBudget::default()),
            deposit: true,
            histogram: None,
        })
    }

    /// Draws hedges from `budget` and deposits every request into it.
    #[must_use]
    pub fn budget(mut self, budget: impl RetryBudget + 'static) -> Self {
        self.budget = Arc::new(budget);
        self.deposit = true;
        self
    }

    /// Draws hedges from `budget` without depositing: for a budget a
    /// [`RetryLayer`](crate::retry::RetryLayer) above already fills, so that retries and hedges
    /// share one allowance and requests are counted once.
    #[must_use]
    pub fn drawing_from(mut self, budget: impl RetryBudget + 'static) -> Self {
        self.budget = Arc::new(budget);
        self.deposit = false;
        self
    }

    /// Uses (and feeds) `histogram`, to share one between layers; by default each `layer` call
    /// makes its own.
    #[must_use]
    pub fn histogram(mut self, histogram: LatencyHistogram) -> Self {
        self.histogram = Some(histogram);
        self
    }
}

impl Default for HedgeLayer {
    fn default() -> Self {
        Self::new(HedgeConfig::default()).expect("the default configuration is valid")
    }
}

/// What every [`Hedge`] service and future built by one `layer` call shares.
#[derive(Debug)]
pub(super) struct HedgeSettings {
    pub(super) delay: HedgeDelay,
    pub(super) replay_cap: usize,
    pub(super) classifier: MeshClassifier,
    pub(super) budget: Arc<dyn RetryBudget>,
    pub(super) deposit: bool,
    pub(super) histogram: LatencyHistogram,
    pub(super) sent: Counter<u64>,
    pub(super) won: Counter<u64>,
    pub(super) budget_exhausted: Counter<u64>,
}

impl<S> Layer<S> for HedgeLayer {
    type Service = Hedge<S>;

    fn layer(&self, inner: S) -> Hedge<S> {
        let meter = self
            .config
            .meter
            .clone()
            .unwrap_or_else(|| opentelemetry::global::meter("mesh-retry"));
        let settings = HedgeSettings {
            delay: self.config.delay,
            replay_cap: self.config.replay_cap,
            classifier: MeshClassifier::new(),
            budget: Arc::clone(&self.budget),
            deposit: self.deposit,
            histogram: self
                .histogram
                .clone()
                .unwrap_or_else(|| LatencyHistogram::new(self.config.window)),
            sent: meter
                .u64_counter("mesh.hedge.sent")
                .with_unit("{hedge}")
                .with_description("Hedged (extra) attempts sent")
                .build(),
            won: meter
                .u64_counter("mesh.hedge.won")
                .with_unit("{hedge}")
                .with_description("Responses that came from the hedged attempt")
                .build(),
            budget_exhausted: meter
                .u64_counter("mesh.hedge.budget_exhausted")
                .with_unit("{hedge}")
                .with_description("Hedges refused by the retry budget")
                .build(),
        };
        // A 0 point at once, so the series exists before its first increment (see the crate's
        // metric docs).
        for counter in [&settings.sent, &settings.won, &settings.budget_exhausted] {
            counter.add(0, &[]);
        }
        Hedge::from_settings(inner, Arc::new(settings))
    }
}
