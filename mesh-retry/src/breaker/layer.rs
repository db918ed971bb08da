//! [`CircuitBreakerLayer`].

use std::sync::Arc;

use mesh_core::ConfigError;
use mesh_core::classify::MeshClassifier;
use tower_layer::Layer;

use super::config::BreakerConfig;
use super::handle::BreakerHandle;
use super::service::CircuitBreaker;

/// Wraps services in a [`CircuitBreaker`], **one breaker per wrapped service**: under a balancer
/// each endpoint gets its own; clones of one wrapped service share theirs. To share one breaker
/// between services built separately, use [`CircuitBreaker::with_handle`].
///
/// Holds only the validated configuration and the classifier (`C`, [`MeshClassifier`] by default)
/// that turns responses into outcomes. The [module docs](super) have a compiled example.
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer<C = MeshClassifier> {
    config: Arc<BreakerConfig>,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// A layer with `config`, classifying with [`MeshClassifier`]; fails on an invalid config.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        Self::with_classifier(config, MeshClassifier::new())
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// A layer with `config` and a custom classifier (any tower-http `MakeClassifier` whose
    /// failure class is mesh-core's `FailureClass`).
    pub fn with_classifier(config: BreakerConfig, classifier: C) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config: Arc::new(config),
            classifier,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        let handle = BreakerHandle::new(&self.config)
            .expect("the configuration was validated when the layer was built");
        CircuitBreaker::with_handle(inner, handle, self.classifier.clone())
    }
}
