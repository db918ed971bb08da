//! [`ConcurrencyLimitLayer`].

use std::sync::Arc;

use mesh_core::ConfigError;
use tower_layer::Layer;

use super::config::ConcurrencyConfig;
use super::limiter::LimitHandle;
use super::service::ConcurrencyLimit;

/// Wraps services in a [`ConcurrencyLimit`], **one limit per wrapped service** (clones of a wrapped
/// service share it). Holds only the validated configuration. The [module docs](super) have a
/// compiled example.
#[derive(Clone, Debug)]
pub struct ConcurrencyLimitLayer {
    config: Arc<ConcurrencyConfig>,
}

impl ConcurrencyLimitLayer {
    /// A layer with `config`; fails on an invalid config.
    pub fn new(config: ConcurrencyConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ConcurrencyConfig {
        &self.config
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let handle = LimitHandle::new(&self.config)
            .expect("the configuration was validated when the layer was built");
        ConcurrencyLimit::with_handle(inner, handle, self.config.over_limit)
    }
}
