//! [`LayerTracer`]: the tracer a trace layer starts its spans with, concrete when it can be.
//!
//! OpenTelemetry's type-erased [`BoxedTracer`] boxes every span it starts (one heap allocation per
//! request). When the application hands [`TraceConfig::tracer`](crate::TraceConfig::tracer) the
//! SDK's own tracer (feature `sdk`), the layer keeps it as that type: a span it records is boxed
//! once, with its attributes given in one list, and one it does not record is only its span
//! context, inline. The spans of [`IdOnlyTracer`] are only a span context too. Any other
//! tracer, and the global default, go through `BoxedTracer` as before.

use std::sync::Arc;

use opentelemetry::global::{BoxedSpan, BoxedTracer};
use opentelemetry::trace::{Span, SpanBuilder, SpanContext, Status, Tracer};
use opentelemetry::{Context, KeyValue};

use crate::id_only::{IdOnlySpan, IdOnlyTracer};

/// A layer's tracer; clones share it.
#[derive(Clone, Debug)]
pub(crate) enum LayerTracer {
    /// Any tracer, behind OpenTelemetry's object-safe box (the global one by default).
    Boxed(Arc<BoxedTracer>),
    /// The SDK's tracer, whose spans get their attributes in one list.
    #[cfg(feature = "sdk")]
    Sdk(opentelemetry_sdk::trace::SdkTracer),
    /// Span ids only, nothing recorded.
    IdOnly(IdOnlyTracer),
}

impl LayerTracer {
    /// Keeps `tracer` as the SDK's type or as [`IdOnlyTracer`] when it is one, else boxes it
    /// (once, here).
    pub(crate) fn new<T>(tracer: T) -> Self
    where
        T: Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        let mut slot = Some(tracer);
        let any: &mut dyn std::any::Any = &mut slot;
        if let Some(ids) = any.downcast_mut::<Option<IdOnlyTracer>>()
            && let Some(ids) = ids.take()
        {
            return Self::IdOnly(ids);
        }
        #[cfg(feature = "sdk")]
        if let Some(sdk) = any.downcast_mut::<Option<opentelemetry_sdk::trace::SdkTracer>>()
            && let Some(sdk) = sdk.take()
        {
            return Self::Sdk(sdk);
        }
        let tracer = slot.take().expect("tracer present");
        Self::Boxed(Arc::new(BoxedTracer::new(Box::new(tracer))))
    }

    /// `opentelemetry::global::tracer("mesh-observe")`, read now.
    pub(crate) fn global() -> Self {
        Self::Boxed(Arc::new(opentelemetry::global::tracer("mesh-observe")))
    }

    /// Starts a span as a child of `parent`.
    ///
    /// `attributes` is called only when the tracer is known to record the span (the SDK's, unless
    /// the parent is known and unsampled): it returns the attributes, in a list sized for the ones
    /// the span will get later too, so the SDK keeps that one list and never grows it. Otherwise
    /// the caller sets them on the span itself if it records (see [`MeshSpan::attributes_given`]).
    pub(crate) fn start(
        &self,
        builder: SpanBuilder,
        parent: &Context,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> MeshSpan {
        #[cfg(not(feature = "sdk"))]
        let _ = attributes;
        match self {
            Self::Boxed(tracer) => MeshSpan::Boxed(tracer.build_with_context(builder, parent)),
            Self::IdOnly(tracer) => MeshSpan::IdOnly(tracer.child_context(parent)),
            #[cfg(feature = "sdk")]
            Self::Sdk(tracer) => {
                use opentelemetry::trace::TraceContextExt;
                let parent_span = parent.span();
                let known_unsampled = parent_span.span_context().is_valid()
                    && !parent_span.span_context().is_sampled();
                let (span, given) = if known_unsampled {
                    (tracer.build_with_context(builder, parent), false)
                } else {
                    // Set as is (not through `with_attributes`), so the list keeps its capacity.
                    let builder = SpanBuilder {
                        attributes: Some(attributes()),
                        ..builder
                    };
                    (tracer.build_with_context(builder, parent), true)
                };
                // A span the SDK does not record is only its context (ending it does nothing).
                if span.is_recording() {
                    MeshSpan::Sdk(Box::new(span), given)
                } else {
                    MeshSpan::IdOnly(span.span_context().clone())
                }
            }
        }
    }
}

/// A span started by a [`LayerTracer`]: boxed by the OpenTelemetry API, the SDK's recording
/// span in a box of its own, or only a span context (an [`IdOnlyTracer`]'s span, or one the SDK
/// does not record).
///
/// The SDK's span is large (about 300 bytes). Inline, it made the response future of every
/// request that large, recorded or not, and each layer above moved that future once more; boxed,
/// only a recorded span pays, with one allocation, next to the several the SDK makes to record
/// it.
pub(crate) enum MeshSpan {
    /// From a [`BoxedTracer`].
    Boxed(BoxedSpan),
    /// The SDK's span; `true` when its request attributes were given at build time.
    #[cfg(feature = "sdk")]
    Sdk(Box<opentelemetry_sdk::trace::Span>, bool),
    /// An [`IdOnlyTracer`]'s span, or an SDK span not recorded: its context, nothing recorded.
    IdOnly(SpanContext),
}

impl MeshSpan {
    /// Whether the request attributes were given when the span was built.
    pub(crate) fn attributes_given(&self) -> bool {
        match self {
            Self::Boxed(_) | Self::IdOnly(_) => false,
            #[cfg(feature = "sdk")]
            Self::Sdk(_, given) => *given,
        }
    }

    /// A child of `parent` holding this span (the server side makes it current while the
    /// handler runs).
    pub(crate) fn into_context(self, parent: &Context) -> Context {
        use opentelemetry::trace::TraceContextExt;
        match self {
            Self::Boxed(span) => parent.with_span(span),
            #[cfg(feature = "sdk")]
            Self::Sdk(span, _) => parent.with_span(*span),
            Self::IdOnly(context) => parent.with_span(IdOnlySpan::from_context(context)),
        }
    }

    pub(crate) fn span_context(&self) -> &SpanContext {
        match self {
            Self::Boxed(span) => span.span_context(),
            #[cfg(feature = "sdk")]
            Self::Sdk(span, _) => span.span_context(),
            Self::IdOnly(context) => context,
        }
    }

    pub(crate) fn is_recording(&self) -> bool {
        match self {
            Self::Boxed(span) => span.is_recording(),
            #[cfg(feature = "sdk")]
            Self::Sdk(span, _) => span.is_recording(),
            Self::IdOnly(_) => false,
        }
    }

    pub(crate) fn set_attribute(&mut self, attribute: KeyValue) {
        match self {
            Self::Boxed(span) => span.set_attribute(attribute),
            #[cfg(feature = "sdk")]
            Self::Sdk(span, _) => span.set_attribute(attribute),
            Self::IdOnly(_) => {}
        }
    }

    pub(crate) fn set_status(&mut self, status: Status) {
        match self {
            Self::Boxed(span) => span.set_status(status),
            #[cfg(feature = "sdk")]
            Self::Sdk(span, _) => span.set_status(status),
            Self::IdOnly(_) => {}
        }
    }

    pub(crate) fn end(&mut self) {
        match self {
            Self::Boxed(span) => span.end(),
            #[cfg(feature = "sdk")]
            Self::Sdk(span, _) => span.end(),
            Self::IdOnly(_) => {}
        }
    }
}
