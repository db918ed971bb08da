//! [`AccessLogLayer`].

use std::fmt;
use std::sync::Arc;

use mesh_core::classify::MeshClassifier;
use tower_layer::Layer;

use super::{AccessLog, AccessLogRecord};

/// Where records go.
pub(crate) type Sink = Arc<dyn Fn(&AccessLogRecord) + Send + Sync>;

/// Builds [`AccessLog`] services; see the [module docs](super). Clones share the sink.
#[derive(Clone)]
pub struct AccessLogLayer {
    sink: Sink,
    classifier: MeshClassifier,
}

impl AccessLogLayer {
    /// Writes each record as a `tracing` event (target `mesh_observe::access_log`, level `INFO`).
    pub fn new() -> Self {
        Self::with_sink(AccessLogRecord::emit)
    }

    /// Hands each record to `sink` instead, on the task that finishes the request; the sink
    /// should not block.
    pub fn with_sink(sink: impl Fn(&AccessLogRecord) + Send + Sync + 'static) -> Self {
        Self {
            sink: Arc::new(sink),
            classifier: MeshClassifier::new(),
        }
    }

    /// Classifies outcomes with `classifier` (default [`MeshClassifier::new`]).
    #[must_use]
    pub fn classifier(mut self, classifier: MeshClassifier) -> Self {
        self.classifier = classifier;
        self
    }
}

impl Default for AccessLogLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for AccessLogLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLogLayer")
            .field("classifier", &self.classifier)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog::from_parts(inner, Arc::clone(&self.sink), self.classifier)
    }
}
