//! OTLP (HTTP/protobuf) export of traces and metrics, set up in one call (feature `otlp`).
//!
//! [`OtlpPipeline::new`] builds an OpenTelemetry SDK tracer provider (batch span export) and meter
//! provider (periodic metric export) that send to an OTLP/HTTP receiver — an OpenTelemetry
//! Collector, or any backend that accepts OTLP — at `{endpoint}/v1/traces` and
//! `{endpoint}/v1/metrics`, protobuf-encoded. Hand [`OtlpPipeline::trace_config`] to the layers,
//! or install the providers globally (`opentelemetry::global::set_tracer_provider`), as the
//! application prefers. Call [`OtlpPipeline::shutdown`] before exiting to send what is buffered.
//!
//! The SDK exports from its own threads; the HTTP requests are made by a hyper client spawned on
//! the tokio runtime that was current when the pipeline was built, so the pipeline must be built
//! inside a multi-thread runtime that outlives it. `force_flush` and `shutdown` block: call them
//! from `spawn_blocking` or outside the runtime, never on a runtime worker.
//!
//! ```no_run
//! use mesh_observe::otlp::{OtlpConfig, OtlpPipeline};
//! use mesh_observe::ServerTraceLayer;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let otlp = OtlpPipeline::new(
//!     OtlpConfig::default()
//!         .endpoint("http://otel-collector:4318")
//!         .service_name("orders"),
//! )?;
//! let layer = ServerTraceLayer::new(otlp.trace_config("orders"));
//! # let _ = layer;
//! // ... serve ...
//! tokio::task::spawn_blocking(move || otlp.shutdown()).await??;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::TracerProvider;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{
    MetricExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::runtime::Handle;

use crate::TraceConfig;

/// Where and how often to export; see the [module docs](self).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OtlpConfig {
    endpoint: String,
    timeout: Duration,
    metrics_interval: Duration,
    service_name: Option<String>,
}

impl Default for OtlpConfig {
    /// `http://localhost:4318` (the OTLP/HTTP default port), a 10 s export timeout (the OTLP
    /// exporter specification's default), metrics every 60 s (the SDK specification's default
    /// export interval), no `service.name` (the SDK then reports `unknown_service`).
    fn default() -> Self {
        Self {
            endpoint: "http://localhost:4318".to_owned(),
            timeout: Duration::from_secs(10),
            metrics_interval: Duration::from_secs(60),
            service_name: None,
        }
    }
}

impl OtlpConfig {
    /// The receiver's base URL; `/v1/traces` and `/v1/metrics` are appended.
    #[must_use]
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// The deadline of each export request.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often metrics are exported.
    #[must_use]
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = interval;
        self
    }

    /// The `service.name` resource attribute of everything exported.
    #[must_use]
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    fn url(&self, signal: &str) -> String {
        format!("{}/v1/{signal}", self.endpoint.trim_end_matches('/'))
    }
}

/// Why the OTLP pipeline could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpSetupError {
    /// Not called from inside a tokio runtime (the exporter's HTTP client needs one).
    #[error("the OTLP pipeline must be built inside a tokio runtime")]
    NoRuntime,
    /// The exporter rejected the configuration (an invalid `endpoint`, say).
    #[error("invalid OTLP exporter configuration: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The SDK providers exporting over OTLP/HTTP; see the [module docs](self).
#[derive(Debug)]
pub struct OtlpPipeline {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
}

impl OtlpPipeline {
    /// Builds both providers and their exporters. Nothing is sent until spans end or the first
    /// metric interval passes.
    pub fn new(config: OtlpConfig) -> Result<Self, OtlpSetupError> {
        Self::build(config, None::<PeriodicReader<MetricExporter>>)
    }

    /// As [`new`](Self::new), with `reader` registered on the meter provider beside the OTLP
    /// one, so that the same instruments are exported both ways: a Prometheus exporter, say, for
    /// a `/metrics` endpoint scraped while the metrics are also pushed over OTLP.
    pub fn with_metric_reader(
        config: OtlpConfig,
        reader: impl MetricReader,
    ) -> Result<Self, OtlpSetupError> {
        Self::build(config, Some(reader))
    }

    fn build(
        config: OtlpConfig,
        extra_reader: Option<impl MetricReader>,
    ) -> Result<Self, OtlpSetupError> {
        let handle = Handle::try_current().map_err(|_| OtlpSetupError::NoRuntime)?;
        let client = OnRuntime {
            client: HyperClient::with_default_connector(config.timeout, None),
            handle,
        };
        let spans = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.url("traces"))
            .with_timeout(config.timeout)
            .with_http_client(client.clone())
            .build()?;
        let metrics = MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.url("metrics"))
            .with_timeout(config.timeout)
            .with_http_client(client)
            .build()?;
        let resource = match &config.service_name {
            Some(name) => Resource::builder().with_service_name(name.clone()).build(),
            None => Resource::builder().build(),
        };
        let tracer_provider = SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .with_resource(resource.clone())
            .build();
        let reader = PeriodicReader::builder(metrics)
            .with_interval(config.metrics_interval)
            .build();
        let mut meter_provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource);
        if let Some(extra) = extra_reader {
            meter_provider = meter_provider.with_reader(extra);
        }
        let meter_provider = meter_provider.build();
        Ok(Self {
            tracer_provider,
            meter_provider,
        })
    }

    /// A [`TraceConfig`] recording into these providers, under instrumentation scope `scope`.
    pub fn trace_config(&self, scope: &'static str) -> TraceConfig {
        TraceConfig::new()
            .tracer(self.tracer_provider.tracer(scope))
            .meter(self.meter_provider.meter(scope))
    }

    /// The tracer provider (cheap to clone), e.g. to install globally.
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// The meter provider (cheap to clone), e.g. to install globally.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meter_provider
    }

    /// Exports everything recorded so far. Blocks until done (see the module docs).
    pub fn force_flush(&self) -> Result<(), OTelSdkError> {
        self.tracer_provider.force_flush()?;
        self.meter_provider.force_flush()
    }

    /// Exports what is buffered and stops both providers. Blocks until done.
    pub fn shutdown(self) -> Result<(), OTelSdkError> {
        let traces = self.tracer_provider.shutdown();
        let metrics = self.meter_provider.shutdown();
        traces.and(metrics)
    }
}

/// Runs hyper's client on the tokio runtime captured at setup, so the SDK's export threads (which
/// are not tokio threads) can use it: the request is a task on that runtime, and its join handle is
/// a future any executor can wait on.
#[derive(Clone)]
struct OnRuntime {
    client: HyperClient,
    handle: Handle,
}

impl fmt::Debug for OnRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnRuntime").finish_non_exhaustive()
    }
}

type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'a>>;

impl HttpClient for OnRuntime {
    // The signature `#[async_trait]` gives the trait's method, written out to avoid the macro.
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> SendFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let client = self.client.clone();
        let task = self
            .handle
            .spawn(async move { client.send_bytes(request).await });
        Box::pin(async move { task.await.map_err(|joined| Box::new(joined) as HttpError)? })
    }
}
