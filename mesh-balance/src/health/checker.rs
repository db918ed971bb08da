//! The background task that probes one endpoint until its service is dropped.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use http::{Request, Response};
use http_body::Body as HttpBody;
use mesh_core::{Body, BoxError};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tower_service::Service;

use super::metrics::HealthMetrics;
use super::probe::{ProbeFailure, probe};
use super::thresholds::Thresholds;
use super::{HealthCheckConfig, HealthStatus};

/// Starts the checker for one endpoint on the current tokio runtime.
///
/// The checker runs until the returned sender is dropped (or the runtime shuts down). Dropping
/// it stops the task at its next poll: a probe in flight is cancelled, a pending wait ends.
///
/// # Panics
///
/// Outside a tokio runtime, like `tokio::spawn`.
pub(crate) fn spawn<P, B>(
    probe: P,
    config: &HealthCheckConfig,
    seed: u64,
    status: HealthStatus,
) -> oneshot::Sender<()>
where
    P: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    P::Error: Into<BoxError>,
    P::Future: Send,
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (stop_tx, stop_rx) = oneshot::channel();
    let checker = Checker {
        thresholds: Thresholds::new(
            config.initial_state,
            config.healthy_threshold,
            config.unhealthy_threshold,
        ),
        check: config.check.clone(),
        interval: config.interval,
        jitter: config.jitter,
        timeout: config.timeout,
        metrics: HealthMetrics::new(config.meter.as_ref()),
        rng: fastrand::Rng::with_seed(seed),
        status,
    };
    tokio::spawn(checker.run(probe, stop_rx));
    stop_tx
}

struct Checker {
    check: super::HealthCheck,
    interval: Duration,
    jitter: f64,
    timeout: Duration,
    thresholds: Thresholds,
    metrics: HealthMetrics,
    rng: fastrand::Rng,
    status: HealthStatus,
}

impl Checker {
    async fn run<P, B>(mut self, mut service: P, mut stop: oneshot::Receiver<()>)
    where
        P: Service<Request<Body>, Response = Response<B>>,
        P::Error: Into<BoxError>,
        B: HttpBody,
        B::Error: Into<BoxError>,
    {
        // The first probe goes out at once, so a dead endpoint is caught (or an endpoint that
        // starts unhealthy is admitted) as early as possible.
        loop {
            let attempt = tokio::time::timeout(self.timeout, probe(&mut service, &self.check));
            let Some(result) = until_stopped(&mut stop, attempt).await else {
                return;
            };
            self.record(result.unwrap_or(Err(ProbeFailure::Timeout)));
            let wait = jittered(self.interval, self.jitter, &mut self.rng);
            if until_stopped(&mut stop, tokio::time::sleep(wait))
                .await
                .is_none()
            {
                return;
            }
        }
    }

    fn record(&mut self, result: Result<(), ProbeFailure>) {
        let success = result.is_ok();
        match &result {
            Ok(()) => self.metrics.probe("success"),
            Err(failure) => {
                self.metrics.probe(failure.kind());
                tracing::debug!(%failure, "health check probe failed");
            }
        }
        if let Some(state) = self.thresholds.record(success) {
            self.metrics.transition(state);
            match result {
                Ok(()) => tracing::info!(%state, "endpoint passed its health checks"),
                Err(failure) => {
                    tracing::warn!(%state, %failure, "endpoint failed its health checks")
                }
            }
            self.status.set(state, Instant::now());
        }
    }
}

/// `interval × (1 + u)`, `u` uniform in `[-jitter, jitter)`. Never panics: an interval too long
/// to scale saturates.
fn jittered(interval: Duration, jitter: f64, rng: &mut fastrand::Rng) -> Duration {
    if jitter <= 0.0 {
        return interval;
    }
    let factor = 1.0 + jitter * (2.0 * rng.f64() - 1.0);
    Duration::try_from_secs_f64(interval.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// Drives `work` unless the service side hangs up first (`None`).
async fn until_stopped<F: Future>(stop: &mut oneshot::Receiver<()>, work: F) -> Option<F::Output> {
    let mut work = pin!(work);
    poll_fn(|cx| {
        if Pin::new(&mut *stop).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds() {
        let mut rng = fastrand::Rng::with_seed(7);
        let interval = Duration::from_secs(10);
        for _ in 0..10_000 {
            let wait = jittered(interval, 0.15, &mut rng);
            assert!(wait >= Duration::from_millis(8_500), "{wait:?}");
            assert!(wait < Duration::from_millis(11_500), "{wait:?}");
        }
        assert_eq!(jittered(interval, 0.0, &mut rng), interval);
        // Too long to scale up: saturates instead of panicking.
        assert!(jittered(Duration::MAX, 0.5, &mut rng) >= Duration::from_secs(u64::MAX / 2));
    }
}
