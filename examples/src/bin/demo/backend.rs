//! The demo's backends: mesh-core servers behind mesh-tls mTLS and mesh-observe's server layer, each answering with its name in the
//! `x-backend` header after a delay, some slow or failing on purpose.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_core::Body;
use mesh_core::server::{Server, ServerConfig};
use mesh_observe::{ServerTraceLayer, TraceConfig};
use mesh_tls::TlsAcceptor;
use opentelemetry::metrics::Meter;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::Layer;

/// The response header naming the backend that answered.
pub(crate) const BACKEND_HEADER: HeaderName = HeaderName::from_static("x-backend");

/// How a backend answers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Behaviour {
    /// 200 after the delay.
    Healthy(Duration),
    /// 200 after the delay; every 10th answer takes `slow` instead (a long tail).
    Slow { delay: Duration, slow: Duration },
    /// 200 after the delay, except in bursts: for 0.8 s of every 4 s (from 1.5 s after start on)
    /// every answer is a 503 without `Retry-After`, enough in a row for outlier ejection and the
    /// breaker to notice. Time-based, so an ejected backend has recovered when it is probed.
    Flaky(Duration),
}

/// A running backend.
pub(crate) struct Backend {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Backend {
    /// Binds 127.0.0.1:0 and serves over mTLS with `acceptor`.
    pub(crate) async fn start(
        name: &'static str,
        behaviour: Behaviour,
        acceptor: TlsAcceptor,
        meter: &Meter,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let server = Server::new(listener)
            .acceptor(acceptor)
            .config(ServerConfig::default().drain_timeout(Some(Duration::from_secs(2))));
        let addr = server.local_addr()?;
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        let started = Instant::now();
        let handler = tower::service_fn(move |_req: Request<Incoming>| {
            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
            let up = started.elapsed();
            async move { Ok::<_, Infallible>(answer(name, behaviour, n, up).await) }
        });
        // Server spans and `http.server.request.duration`, on the demo's meter.
        let service = ServerTraceLayer::new(TraceConfig::new().meter(meter.clone())).layer(handler);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve_with_shutdown(service, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            served,
            stop,
            task,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish (mesh-core's graceful shutdown), and
    /// returns the number of requests served.
    pub(crate) async fn shutdown(self) -> Result<u64, mesh_core::BoxError> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(self.served.load(Ordering::Relaxed))
    }
}

/// Answer number `n`, `up` after the backend started.
async fn answer(name: &'static str, behaviour: Behaviour, n: u64, up: Duration) -> Response<Body> {
    let (delay, fail) = match behaviour {
        Behaviour::Healthy(delay) => (delay, false),
        Behaviour::Slow { delay, slow } => (if n.is_multiple_of(10) { slow } else { delay }, false),
        Behaviour::Flaky(delay) => {
            let phase = (up.as_millis() + 2500) % 4000;
            (delay, phase < 800)
        }
    };
    tokio::time::sleep(delay).await;
    let mut res = Response::new(Body::from(format!("hello from {name}\n")));
    res.headers_mut()
        .insert(BACKEND_HEADER, HeaderValue::from_static(name));
    if fail {
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    res
}
