//! [`HealthCheckLayer`]: wraps each endpoint service in a [`HealthChecked`] gate.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{Request, Response};
use http_body::Body as HttpBody;
use mesh_core::ConfigError;
use mesh_core::{Body, BoxError};
use tower_layer::Layer;
use tower_service::Service;

use super::{HealthCheckConfig, HealthChecked};

/// Builds [`HealthChecked`] services, each probing through a clone of the service it wraps.
///
/// Meant for the per-endpoint factory of a balancer: every [`layer`](Layer::layer) call starts
/// one background checker (with `tokio::spawn`, so it must run inside a tokio runtime) that lives
/// as long as the returned service and its clones. The configuration is checked once, here.
///
/// `Clone`: clones share the configuration and, when [`seed`](HealthCheckConfig::seed) is set,
/// the count of services built, so each service still gets its own jitter stream.
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
///
/// use http::{Request, Response};
/// use mesh_balance::health::{HealthCheck, HealthCheckConfig, HealthCheckLayer};
/// use mesh_core::{Body, Endpoint};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mesh_core::BoxError> {
/// let config = HealthCheckConfig::new(HealthCheck::http("/ready".parse()?))
///     .interval(Duration::from_secs(5))
///     .unhealthy_threshold(2);
/// let layer = HealthCheckLayer::new(config)?;
///
/// // In a balancer's factory, the inner service would be the endpoint's HTTP client.
/// let make = |_: &Endpoint| {
///     layer.layer(service_fn(|_req: Request<Body>| async {
///         Ok::<_, Infallible>(Response::new(Body::from("ok")))
///     }))
/// };
/// let endpoint = make(&Endpoint::new("10.0.0.1:8080".parse()?));
/// let status = endpoint.status();
/// let response = endpoint.oneshot(Request::new(Body::empty())).await?;
/// assert_eq!(response.status(), 200);
/// assert!(status.is_healthy());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HealthCheckLayer {
    config: HealthCheckConfig,
    built: Arc<AtomicU64>,
}

impl HealthCheckLayer {
    /// A layer checking endpoints with `config`.
    ///
    /// Fails on an invalid `config`, naming the setting.
    pub fn new(config: HealthCheckConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            built: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HealthCheckConfig {
        &self.config
    }

    /// Wraps `inner`, probing through `probe` instead of a clone of `inner` (see
    /// [`HealthChecked::with_probe`]).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the checker is started with `tokio::spawn`).
    pub fn layer_with_probe<S, P, B>(&self, inner: S, probe: P) -> HealthChecked<S>
    where
        P: Service<Request<Body>, Response = Response<B>> + Send + 'static,
        P::Error: Into<BoxError>,
        P::Future: Send,
        B: HttpBody + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        HealthChecked::start(inner, probe, &self.config, self.next_seed())
    }

    /// The jitter seed of the next service: unseeded configs draw one; seeded ones derive the
    /// n-th stream with SplitMix64, whose outputs for consecutive inputs are uncorrelated.
    fn next_seed(&self) -> u64 {
        let Some(seed) = self.config.seed else {
            return fastrand::u64(..);
        };
        let n = self.built.fetch_add(1, Ordering::Relaxed);
        let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl fmt::Debug for HealthCheckLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheckLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, B> Layer<S> for HealthCheckLayer
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Service = HealthChecked<S>;

    /// # Panics
    ///
    /// Outside a tokio runtime (the checker is started with `tokio::spawn`).
    fn layer(&self, inner: S) -> HealthChecked<S> {
        let probe = inner.clone();
        self.layer_with_probe(inner, probe)
    }
}
