//! The retry layer: configuration only.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use mesh_core::ConfigError;
use mesh_core::classify::{GrpcClassifier, GrpcCode, GrpcCodeSet, MeshClassifier};
use opentelemetry::metrics::Meter;
use tower_layer::Layer;

use super::RetryLimit;
use super::metrics::RetryMetrics;
use super::{Retry, RetryPolicy};
use crate::budget::{RetryBudget, WindowBudget};

/// Retries failed requests according to a [`RetryPolicy`], within a [`RetryBudget`]; builds
/// [`Retry`] services. See the [module docs](super) for the model and an example.
///
/// The layer holds configuration only. The budget is shared: every service built by this layer
/// (and by its clones) draws from the same one, [`WindowBudget::default`] unless
/// [`budget`](Self::budget) says otherwise.
///
/// Metrics: `mesh.retry.retries` (by reason), `mesh.retry.budget_exhausted` and
/// `mesh.retry.not_replayable`, through the meter given to [`meter`](Self::meter) or
/// the global `mesh-retry` meter; units and attributes are in the [crate's metric
/// table](crate#metrics).
#[derive(Clone, Debug)]
pub struct RetryLayer<C = MeshClassifier> {
    policy: RetryPolicy,
    classifier: C,
    budget: Arc<dyn RetryBudget>,
    limit: Option<RetryLimit>,
    meter: Option<Meter>,
}

impl RetryLayer {
    /// A layer with this policy, the default classifier ([`MeshClassifier`]) and a default
    /// [`WindowBudget`].
    ///
    /// The classifier's gRPC failure set is [`GrpcCodeSet::SERVER_ERRORS`] plus
    /// `RESOURCE_EXHAUSTED`, so that a `RESOURCE_EXHAUSTED` carrying a pushback delay reaches the
    /// policy, which retries it after that delay; without a pushback the policy does not retry it
    /// (unless it is in the policy's `grpc_codes`). A classifier given to
    /// [`classifier`](Self::classifier) needs the same code in its set for that.
    ///
    /// Fails when the policy does not [validate](RetryPolicy::validate): the one point a
    /// policy is checked.
    pub fn new(policy: RetryPolicy) -> Result<Self, ConfigError> {
        policy.validate()?;
        Ok(Self {
            policy,
            classifier: MeshClassifier::new().with_grpc(
                GrpcClassifier::new().with_failure_codes(
                    GrpcCodeSet::SERVER_ERRORS.with(GrpcCode::RESOURCE_EXHAUSTED),
                ),
            ),
            budget: Arc::new(WindowBudget::default()),
            limit: None,
            meter: None,
        })
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new(RetryPolicy::default()).expect("the default policy is valid")
    }
}

impl<C> RetryLayer<C> {
    /// Draws retries from `budget` (cloning a [`WindowBudget`] or [`TokenBucketBudget`] shares
    /// its state, so the same budget can serve several layers).
    ///
    /// [`TokenBucketBudget`]: crate::budget::TokenBucketBudget
    #[must_use]
    pub fn budget(mut self, budget: impl RetryBudget + 'static) -> Self {
        self.budget = Arc::new(budget);
        self
    }

    /// Classifies outcomes with `classifier` (any tower-http `MakeClassifier` whose failure class
    /// is mesh-core's `FailureClass`, such as a [`MeshClassifier`] with another gRPC failure set).
    pub fn classifier<C2>(self, classifier: C2) -> RetryLayer<C2> {
        RetryLayer {
            policy: self.policy,
            classifier,
            budget: self.budget,
            limit: self.limit,
            meter: self.meter,
        }
    }

    /// Bounds the retries in flight over every request of this layer (and of every layer
    /// sharing `limit`); see [`RetryLimit`]. Default: none, only the budget.
    #[must_use]
    pub fn limit(mut self, limit: RetryLimit) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Records metrics through `meter`.
    #[must_use]
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

/// What every [`Retry`] service and future built by one `layer` call shares.
#[derive(Debug)]
pub(super) struct Settings<C> {
    pub(super) policy: RetryPolicy,
    pub(super) classifier: C,
    pub(super) budget: Arc<dyn RetryBudget>,
    pub(super) limit: Option<RetryLimit>,
    pub(super) metrics: RetryMetrics,
    /// Jitter seeds are `seed` mixed with a per-retry sequence number, so a seeded layer gives
    /// reproducible delays and two requests never share a jitter sequence.
    pub(super) seed: u64,
    pub(super) sequence: AtomicU64,
}

impl<S, C: Clone> Layer<S> for RetryLayer<C> {
    type Service = Retry<S, C>;

    fn layer(&self, inner: S) -> Retry<S, C> {
        let meter = self
            .meter
            .clone()
            .unwrap_or_else(|| opentelemetry::global::meter("mesh-retry"));
        let settings = Settings {
            policy: self.policy.clone(),
            classifier: self.classifier.clone(),
            budget: Arc::clone(&self.budget),
            limit: self.limit.clone(),
            metrics: RetryMetrics::new(&meter),
            seed: self.policy.seed.unwrap_or_else(|| fastrand::u64(..)),
            sequence: AtomicU64::new(0),
        };
        Retry::from_settings(inner, Arc::new(settings))
    }
}
