//! [`ServerTraceLayer`].

use std::sync::Arc;

use tower_layer::Layer;

use super::ServerTrace;
use crate::config::TraceConfig;
use crate::metrics::{RequestInstruments, Side};

/// Builds [`ServerTrace`] services; see the [module docs](super).
///
/// The instruments are created once, here, from the configured meter and shared by every service
/// the layer builds and by their clones.
#[derive(Clone, Debug)]
pub struct ServerTraceLayer {
    config: TraceConfig,
    instruments: Arc<RequestInstruments>,
}

impl ServerTraceLayer {
    /// A layer recording with `config`'s tracer, meter and classifier.
    pub fn new(config: TraceConfig) -> Self {
        let instruments = RequestInstruments::new(&config.resolve_meter(), Side::Server);
        Self {
            config,
            instruments: Arc::new(instruments),
        }
    }
}

impl Default for ServerTraceLayer {
    fn default() -> Self {
        Self::new(TraceConfig::default())
    }
}

impl<S> Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;

    fn layer(&self, inner: S) -> ServerTrace<S> {
        ServerTrace::from_parts(inner, &self.config, Arc::clone(&self.instruments))
    }
}
