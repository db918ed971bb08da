//! [`ClientTraceLayer`].

use std::sync::Arc;

use tower_layer::Layer;

use super::ClientTrace;
use super::authority::AuthorityCache;
use crate::config::TraceConfig;
use crate::metrics::{RequestInstruments, Side};

/// Builds [`ClientTrace`] services; see the [module docs](super).
///
/// The instruments are created once, here, from the configured meter and shared by every service
/// the layer builds and by their clones, as is the cache of recent `server.address` values.
#[derive(Clone, Debug)]
pub struct ClientTraceLayer {
    config: TraceConfig,
    instruments: Arc<RequestInstruments>,
    authorities: Arc<AuthorityCache>,
}

impl ClientTraceLayer {
    /// A layer recording with `config`'s tracer, meter, classifier and propagation formats.
    pub fn new(config: TraceConfig) -> Self {
        let instruments = RequestInstruments::new(&config.resolve_meter(), Side::Client);
        Self {
            config,
            instruments: Arc::new(instruments),
            authorities: Arc::new(AuthorityCache::default()),
        }
    }
}

impl Default for ClientTraceLayer {
    fn default() -> Self {
        Self::new(TraceConfig::default())
    }
}

impl<S> Layer<S> for ClientTraceLayer {
    type Service = ClientTrace<S>;

    fn layer(&self, inner: S) -> ClientTrace<S> {
        ClientTrace::from_parts(
            inner,
            &self.config,
            Arc::clone(&self.instruments),
            Arc::clone(&self.authorities),
        )
    }
}
