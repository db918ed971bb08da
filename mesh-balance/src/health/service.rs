//! [`HealthChecked`]: one endpoint's service, not ready while active health checks fail.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body as HttpBody;
use mesh_core::ConfigError;
use mesh_core::{Body, BoxError};
use tokio::sync::oneshot;
use tower_service::Service;

use super::{HealthCheckConfig, HealthStatus, checker};

/// Wraps one endpoint's service; a background task probes the endpoint and, while it is
/// unhealthy, `poll_ready` is `Pending`, so a balancer routes around it.
///
/// - **Healthy**: `poll_ready` is the inner service's `poll_ready`; `call` is the inner `call`;
///   responses, errors and futures are the inner service's, untouched.
/// - **Unhealthy**: `poll_ready` returns `Pending` and the task is woken when the endpoint turns
///   healthy again. A request for which `poll_ready` already returned `Ready` is still sent: the
///   inner service reserved capacity for it, and the verdict is minutes-scale, not per-request.
///   A caller that never polls readiness bypasses the gate (the balancer always polls).
///
/// **Clone** shares the checker and the [`HealthStatus`]: a clone is the same endpoint, and
/// starts without any reservation of its own (it clones the inner service, which follows its own
/// rules). **Drop**: the checker task stops when the last clone is dropped — the balancer
/// dropping a removed endpoint stops its probes. A [`HealthStatus`] obtained from
/// [`status`](Self::status) does not keep it running.
///
/// Built by [`HealthCheckLayer`](super::HealthCheckLayer) or by the constructors here, which
/// spawn the checker with `tokio::spawn` and so must run inside a tokio runtime.
#[derive(Clone, Debug)]
pub struct HealthChecked<S> {
    inner: S,
    status: HealthStatus,
    /// Dropped with the last clone; the checker stops when it sees the channel close.
    _checker: Arc<oneshot::Sender<()>>,
}

impl<S> HealthChecked<S> {
    /// Wraps `inner`, probing through a clone of it.
    ///
    /// Probes then share the inner service's connections and limits: with mesh-core's HTTP/1.1
    /// client and a small `max_connections`, busy traffic could starve the probes into
    /// timeouts; give such endpoints their own probe client with
    /// [`with_probe`](Self::with_probe).
    ///
    /// Fails on an invalid `config`, naming the setting.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the checker is started with `tokio::spawn`).
    pub fn new<B>(inner: S, config: &HealthCheckConfig) -> Result<Self, ConfigError>
    where
        S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send,
        B: HttpBody + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let probe = inner.clone();
        Self::with_probe(inner, probe, config)
    }

    /// Wraps `inner`, probing through `probe`: a separate client for the same endpoint (say,
    /// a dedicated connection, or an admin port).
    ///
    /// Fails on an invalid `config`, naming the setting.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the checker is started with `tokio::spawn`).
    pub fn with_probe<P, B>(
        inner: S,
        probe: P,
        config: &HealthCheckConfig,
    ) -> Result<Self, ConfigError>
    where
        P: Service<Request<Body>, Response = Response<B>> + Send + 'static,
        P::Error: Into<BoxError>,
        P::Future: Send,
        B: HttpBody + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        config.validate()?;
        let seed = config.seed.unwrap_or_else(|| fastrand::u64(..));
        Ok(Self::start(inner, probe, config, seed))
    }

    /// Starts the checker with an already validated `config`.
    pub(crate) fn start<P, B>(inner: S, probe: P, config: &HealthCheckConfig, seed: u64) -> Self
    where
        P: Service<Request<Body>, Response = Response<B>> + Send + 'static,
        P::Error: Into<BoxError>,
        P::Future: Send,
        B: HttpBody + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let status = HealthStatus::new(config.initial_state);
        let stop = checker::spawn(probe, config, seed, status.clone());
        Self {
            inner,
            status,
            _checker: Arc::new(stop),
        }
    }

    /// A handle on this endpoint's health, shared with every clone.
    pub fn status(&self) -> HealthStatus {
        self.status.clone()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service. The checker stops if this was the last clone.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R> Service<R> for HealthChecked<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.status.poll_healthy(cx) {
            return Poll::Pending;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.inner.call(request)
    }
}
