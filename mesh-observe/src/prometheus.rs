//! A Prometheus text-format `/metrics` endpoint fed by the OpenTelemetry SDK (feature `prometheus`).
//!
//! [`prometheus_endpoint`] returns two halves: a metric *reader* to register with the
//! application's `SdkMeterProvider`, and a [`MetricsService`] to serve on the admin port. Every
//! scrape collects the provider's current values (cumulative, as Prometheus expects) and renders
//! them in the text exposition format, so every metric in the [workspace table](crate::metrics) —
//! `http.server.request.duration` becomes `http_server_request_duration_seconds_bucket` etc. —
//! shows up without further wiring.
//!
//! # Why opentelemetry-prometheus rather than a reader of our own
//!
//! Turning OpenTelemetry data into Prometheus families has many small rules (unit suffixes,
//! `_total` on counters, name sanitising, `le` buckets, `target_info`, scope labels) that
//! OpenTelemetry's Prometheus compatibility specification fixes and opentelemetry-prometheus
//! implements and tracks. A private reader would duplicate that and drift. The cost is the
//! `prometheus` crate (without its default features: no protobuf), only under this feature.
//!
//! ```
//! use mesh_observe::prometheus::prometheus_endpoint;
//! use opentelemetry::metrics::MeterProvider;
//! use opentelemetry_sdk::metrics::SdkMeterProvider;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (reader, metrics) = prometheus_endpoint().unwrap();
//! let provider = SdkMeterProvider::builder().with_reader(reader).build();
//! provider.meter("app").u64_counter("jobs").build().add(3, &[]);
//!
//! let response = metrics.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(response.status(), 200);
//! # }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use mesh_core::Body;
use opentelemetry_prometheus::PrometheusExporter;
use prometheus::{Encoder, Registry, TextEncoder};
use tower_service::Service;

/// Why the Prometheus endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("prometheus endpoint setup failed: {0}")]
pub struct PrometheusSetupError(#[source] opentelemetry_sdk::error::OTelSdkError);

/// Creates the reader to register with an `SdkMeterProvider` (`.with_reader(reader)`) and the
/// service that renders what it reads.
///
/// Each call creates its own registry, so two providers (or two tests) never share series.
pub fn prometheus_endpoint() -> Result<(PrometheusExporter, MetricsService), PrometheusSetupError> {
    let registry = Registry::new();
    let reader = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .map_err(PrometheusSetupError)?;
    Ok((reader, MetricsService { registry }))
}

/// The `/metrics` service: answers `GET` and `HEAD` with the text exposition format (version
/// 0.0.4), `405` otherwise. It does not look at the path: mount it where it belongs.
///
/// Every call collects the metrics anew (no caching); clones share the registry. Always ready.
#[derive(Clone)]
pub struct MetricsService {
    registry: Registry,
}

impl fmt::Debug for MetricsService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsService").finish_non_exhaustive()
    }
}

impl MetricsService {
    /// Renders the current metrics in the text exposition format.
    pub fn render(&self) -> Result<Vec<u8>, prometheus::Error> {
        let mut out = Vec::with_capacity(4096);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }

    fn respond(&self, method: &Method) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
        match self.render() {
            Ok(text) => {
                let body = if method == Method::HEAD {
                    Body::empty()
                } else {
                    Body::from(text)
                };
                let mut res = Response::new(body);
                let content_type =
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
                res.headers_mut().insert(CONTENT_TYPE, content_type);
                res
            }
            Err(error) => {
                tracing::warn!(%error, "rendering Prometheus metrics failed");
                let mut res = Response::new(Body::from("metrics unavailable\n"));
                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                res
            }
        }
    }
}

impl<B> Service<Request<B>> for MetricsService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.respond(req.method())))
    }
}
