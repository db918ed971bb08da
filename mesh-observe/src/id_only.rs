//! [`IdOnlyTracer`]: span ids for propagation, and nothing recorded.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{
    Span, SpanBuilder, SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer, TracerProvider,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};

/// A tracer whose spans carry fresh ids and record nothing.
///
/// A proxy that exports no spans still has to give each hop a span id of its own: the next hop's
/// `traceparent` names this hop's span as its parent, so a collector that later sees any hop's
/// spans can link them. OpenTelemetry's answer without an exporter is the SDK's tracer provider
/// with no span processor, which records every span (its attributes, its timestamps, the
/// request's `url.full`) and then drops it at the end: in mesh-sidecar's outbound stack, about
/// 2 000 instructions and two heap allocations per request for data nobody reads.
///
/// This tracer makes the same span contexts and records nothing:
///
/// - the trace id is the parent's, or a new random one for a root span;
/// - the span id is always a new random one;
/// - the trace flags and trace state are the parent's; a root span is sampled. That is what the
///   SDK's default sampler (`ParentBased(AlwaysOn)`) decides, so a downstream service sees the
///   same `traceparent` flags from a proxy with this tracer as from one with the SDK's;
/// - with telemetry suppressed in the parent context the span context is invalid (as the SDK's).
///
/// Its spans are not recording (`is_recording()` is `false`), so the trace layers skip building
/// their attributes. The ids come from a per-thread `fastrand` generator (wyrand): like the
/// SDK's default `RandomIdGenerator`, not a cryptographic source (trace ids are identifiers, not
/// secrets).
///
/// [`TraceConfig::tracer`](crate::TraceConfig::tracer) keeps this tracer as its own type (no box
/// per span). [`IdOnlyTracerProvider`] installs it as the global provider, for code that reads
/// `opentelemetry::global::tracer`.
#[derive(Clone, Debug, Default)]
pub struct IdOnlyTracer {
    _private: (),
}

impl IdOnlyTracer {
    /// The tracer (it has no state; every value is the same tracer).
    pub fn new() -> Self {
        Self::default()
    }

    /// The span context of a new child of `parent`: the rules in [`IdOnlyTracer`]'s docs.
    pub fn child_context(&self, parent: &Context) -> SpanContext {
        if parent.is_telemetry_suppressed() {
            return SpanContext::empty_context();
        }
        let span_id = new_span_id();
        let parent_span = parent.span();
        let parent = parent_span.span_context();
        if parent.is_valid() {
            SpanContext::new(
                parent.trace_id(),
                span_id,
                parent.trace_flags(),
                false,
                parent.trace_state().clone(),
            )
        } else {
            SpanContext::new(
                new_trace_id(),
                span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            )
        }
    }
}

impl Tracer for IdOnlyTracer {
    type Span = IdOnlySpan;

    /// Ignores everything in `builder` (name, kind, attributes, ids): nothing is recorded, and
    /// the ids are always new, as the SDK's tracer makes them.
    fn build_with_context(&self, _builder: SpanBuilder, parent_cx: &Context) -> IdOnlySpan {
        IdOnlySpan {
            context: self.child_context(parent_cx),
        }
    }
}

/// A span of an [`IdOnlyTracer`]: its span context, and no recording.
#[derive(Clone, Debug, PartialEq)]
pub struct IdOnlySpan {
    context: SpanContext,
}

impl IdOnlySpan {
    pub(crate) fn from_context(context: SpanContext) -> Self {
        Self { context }
    }

    /// The span's context (also [`Span::span_context`]).
    pub fn context(&self) -> &SpanContext {
        &self.context
    }
}

impl Span for IdOnlySpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        _name: T,
        _timestamp: SystemTime,
        _attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
    }

    fn span_context(&self) -> &SpanContext {
        &self.context
    }

    fn is_recording(&self) -> bool {
        false
    }

    fn set_attribute(&mut self, _attribute: KeyValue) {}

    fn set_status(&mut self, _status: Status) {}

    fn update_name<T>(&mut self, _new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
    }

    fn add_link(&mut self, _span_context: SpanContext, _attributes: Vec<KeyValue>) {}

    fn end_with_timestamp(&mut self, _timestamp: SystemTime) {}
}

/// The provider of [`IdOnlyTracer`]s, for `opentelemetry::global::set_tracer_provider`: every
/// scope gets the same tracer, and there is nothing to flush or shut down.
#[derive(Clone, Debug, Default)]
pub struct IdOnlyTracerProvider {
    _private: (),
}

impl IdOnlyTracerProvider {
    /// The provider.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TracerProvider for IdOnlyTracerProvider {
    type Tracer = IdOnlyTracer;

    fn tracer_with_scope(&self, _scope: InstrumentationScope) -> IdOnlyTracer {
        IdOnlyTracer::new()
    }
}

/// A random span id, never the invalid (all-zero) one.
fn new_span_id() -> SpanId {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return SpanId::from(id);
        }
    }
}

/// A random trace id, never the invalid (all-zero) one.
fn new_trace_id() -> TraceId {
    loop {
        let id = fastrand::u128(..);
        if id != 0 {
            return TraceId::from(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote_parent(flags: TraceFlags, state: TraceState) -> Context {
        let parent = SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            SpanId::from(0x00f0_67aa_0ba9_02b7),
            flags,
            true,
            state,
        );
        Context::new().with_remote_span_context(parent)
    }

    #[test]
    fn a_root_span_is_sampled_with_new_ids() {
        let tracer = IdOnlyTracer::new();
        let a = tracer.start_with_context("GET", &Context::new());
        let b = tracer.start_with_context("GET", &Context::new());
        for span in [&a, &b] {
            let sc = span.span_context();
            assert!(sc.is_valid());
            assert!(sc.is_sampled());
            assert!(!sc.is_remote());
            assert_eq!(sc.trace_state(), &TraceState::NONE);
            assert!(!span.is_recording());
        }
        assert_ne!(a.span_context().trace_id(), b.span_context().trace_id());
        assert_ne!(a.span_context().span_id(), b.span_context().span_id());
    }

    #[test]
    fn a_child_keeps_the_parents_trace_flags_and_state() {
        let state = TraceState::from_key_value([("vendor", "x1")]).unwrap();
        let tracer = IdOnlyTracer::new();
        for flags in [TraceFlags::SAMPLED, TraceFlags::NOT_SAMPLED] {
            let parent = remote_parent(flags, state.clone());
            let child = tracer.child_context(&parent);
            let parent_sc = parent.span().span_context().clone();
            assert_eq!(child.trace_id(), parent_sc.trace_id());
            assert_ne!(child.span_id(), parent_sc.span_id());
            assert_ne!(child.span_id(), SpanId::INVALID);
            assert_eq!(child.trace_flags(), flags);
            assert_eq!(child.trace_state(), &state);
            assert!(!child.is_remote());
        }
    }

    #[test]
    fn suppressed_telemetry_gives_an_invalid_context() {
        let parent =
            remote_parent(TraceFlags::SAMPLED, TraceState::NONE).with_telemetry_suppressed();
        assert!(!IdOnlyTracer::new().child_context(&parent).is_valid());
    }

    #[test]
    fn the_span_records_nothing_whatever_it_is_given() {
        let mut span = IdOnlyTracer::new().start_with_context("GET", &Context::new());
        let before = span.clone();
        span.set_attribute(KeyValue::new("http.request.method", "GET"));
        span.set_status(Status::error("boom"));
        span.update_name("POST");
        span.add_event("retry", vec![KeyValue::new("n", 1)]);
        span.add_link(SpanContext::empty_context(), Vec::new());
        span.end();
        assert_eq!(span, before);
        assert!(!span.is_recording());
    }

    #[test]
    fn the_provider_gives_the_tracer_for_any_scope() {
        let tracer = IdOnlyTracerProvider::new().tracer("anything");
        assert!(
            tracer
                .start_with_context("GET", &Context::new())
                .span_context()
                .is_valid()
        );
    }
}
