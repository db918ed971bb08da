//! [`RateLimitLayer`].

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::config::RateLimitConfig;
use super::key::{Global, KeyExtractor};
use super::service::RateLimit;
use mesh_core::ConfigError;

/// Wraps services in a [`RateLimit`], **one set of buckets per wrapped service** (clones of a
/// wrapped service share it). Holds only the validated configuration and the key extractor. The
/// [module docs](super) have a compiled example.
#[derive(Clone)]
pub struct RateLimitLayer<K = Global> {
    config: Arc<RateLimitConfig>,
    extractor: K,
}

impl RateLimitLayer {
    /// A layer with one bucket for all requests; fails on an invalid config.
    pub fn new(config: RateLimitConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config: Arc::new(config),
            extractor: Global,
        })
    }
}

impl<K> RateLimitLayer<K> {
    /// One bucket per key that `extractor` finds in a request.
    pub fn keyed_by<K2: KeyExtractor>(self, extractor: K2) -> RateLimitLayer<K2> {
        RateLimitLayer {
            config: self.config,
            extractor,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }
}

impl<K> fmt::Debug for RateLimitLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("config", &self.config)
            .field("extractor", &std::any::type_name::<K>())
            .finish()
    }
}

impl<S, K: KeyExtractor + Clone> Layer<S> for RateLimitLayer<K> {
    type Service = RateLimit<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, &self.config, self.extractor.clone())
    }
}
