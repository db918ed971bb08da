//! [`TraceConfig`]: what both trace layers share.

use mesh_core::classify::MeshClassifier;
use opentelemetry::metrics::Meter;
use opentelemetry::trace::Tracer;
use std::fmt;

use crate::propagation::Propagation;
use crate::tracer::LayerTracer;

/// Configuration of [`ServerTraceLayer`](crate::ServerTraceLayer) and
/// [`ClientTraceLayer`](crate::ClientTraceLayer).
///
/// Every field has a default that needs no setup; the tracer and meter defaults read the
/// OpenTelemetry global providers **when the layer is built**, so install the providers first (an
/// application choice; until then both are no-ops and cost little). Clones share the tracer.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct TraceConfig {
    pub(crate) tracer: Option<LayerTracer>,
    pub(crate) meter: Option<Meter>,
    pub(crate) classifier: MeshClassifier,
    pub(crate) propagation: Propagation,
}

impl TraceConfig {
    /// The defaults: global tracer and meter named `mesh-observe`, [`MeshClassifier::new`], W3C
    /// propagation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records spans with `tracer` (e.g. `provider.tracer("my-service")`) instead of
    /// `opentelemetry::global::tracer("mesh-observe")`.
    ///
    /// The SDK's tracer (`opentelemetry_sdk::trace::SdkTracer`, with feature `sdk`; the
    /// `towermesh` facade turns it on) is kept as it is: the client layer hands a span its request
    /// attributes when it is built, in one list sized for all of them (one allocation per recorded
    /// span; three through the boxed path), and a span the SDK does not record costs no
    /// allocation. [`IdOnlyTracer`](crate::IdOnlyTracer) is kept as it is too: its spans are a
    /// span context, inline. Any other tracer is boxed once, here, and each of its spans is boxed
    /// by OpenTelemetry's API.
    #[must_use]
    pub fn tracer<T>(mut self, tracer: T) -> Self
    where
        T: Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        self.tracer = Some(LayerTracer::new(tracer));
        self
    }

    /// Records metrics on `meter` instead of `opentelemetry::global::meter("mesh-observe")`.
    ///
    /// With the OpenTelemetry SDK in the build (feature `sdk`, `prometheus` or `otlp`), the
    /// request metrics record through series bound once to their attribute sets (OpenTelemetry's
    /// experimental binding, which the SDK implements): the same series and values, without the
    /// SDK looking each attribute set up per request. A meter (or global meter provider) other
    /// than the SDK's must then implement binding, or those recordings are dropped.
    #[must_use]
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Classifies outcomes (span status, `error.type`) with `classifier`. Default:
    /// [`MeshClassifier::new`], the same default as every other mesh layer, so dashboards and
    /// breakers agree on what a failure is.
    #[must_use]
    pub fn classifier(mut self, classifier: MeshClassifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// The formats outgoing requests carry (client layer only). Default: W3C Trace Context only;
    /// see [`Propagation`].
    #[must_use]
    pub fn propagation(mut self, propagation: Propagation) -> Self {
        self.propagation = propagation;
        self
    }

    pub(crate) fn resolve_tracer(&self) -> LayerTracer {
        self.tracer.clone().unwrap_or_else(LayerTracer::global)
    }

    pub(crate) fn resolve_meter(&self) -> Meter {
        self.meter
            .clone()
            .unwrap_or_else(|| opentelemetry::global::meter("mesh-observe"))
    }
}

impl fmt::Debug for TraceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceConfig")
            .field("tracer", &self.tracer.as_ref().map(|_| "custom"))
            .field("meter", &self.meter.as_ref().map(|_| "custom"))
            .field("classifier", &self.classifier)
            .field("propagation", &self.propagation)
            .finish()
    }
}
