//! The admin listener of the sidecar and the gateway (`/live`, `/ready`, `/metrics`) and the signal
//! that starts their graceful drain.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_core::Body;
use mesh_observe::prometheus::MetricsService;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};

/// The admin service.
pub type Admin = BoxCloneService<Request<Incoming>, Response<Body>, Infallible>;

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res
}

/// `/live`: 200 while the process runs. `/ready`: 200 while `ready` is set (listeners up, not
/// draining), else 503. `/metrics`: Prometheus text. Anything else: 404.
pub fn build(metrics: MetricsService, ready: Arc<AtomicBool>) -> Admin {
    let service = ServiceBuilder::new().service_fn(move |req: Request<Incoming>| {
        let metrics = metrics.clone();
        let ready = ready.load(Ordering::Acquire);
        async move {
            let res = match req.uri().path() {
                "/live" => text(StatusCode::OK, "live\n"),
                "/ready" if ready => text(StatusCode::OK, "ready\n"),
                "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
                "/metrics" => match metrics.oneshot(req).await {
                    Ok(res) => res.map(Body::new),
                    Err(never) => match never {},
                },
                _ => text(StatusCode::NOT_FOUND, "not found\n"),
            };
            Ok::<_, Infallible>(res)
        }
    });
    BoxCloneService::new(service)
}

/// Waits for SIGTERM or Ctrl-C (Ctrl-C only where there are no Unix signals): the proxies' cue to drain.
pub async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}
