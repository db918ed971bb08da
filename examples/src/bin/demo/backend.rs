//! The demo's backends: mesh-core servers answering after a delay, some of them failing on purpose.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_core::Body;
use mesh_core::server::{Server, ServerConfig, ServerStats};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How a backend answers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Behaviour {
    /// 200 after the delay.
    Healthy(Duration),
    /// After the delay, every 4th answer is a 503; every 8th of those carries `Retry-After: 1`.
    Flaky(Duration),
}

#[derive(Debug, Default)]
struct Counters {
    served: AtomicU64,
    in_flight: AtomicU64,
}

/// A running backend.
pub(crate) struct Backend {
    name: &'static str,
    addr: SocketAddr,
    stats: ServerStats,
    counters: Arc<Counters>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// What a backend did by the time it stopped.
pub(crate) struct StopReport {
    pub(crate) served: u64,
    pub(crate) connections: u64,
    /// Requests still in flight after the drain (should be 0: graceful shutdown finishes them).
    pub(crate) failed_in_drain: u64,
}

impl Backend {
    pub(crate) async fn start(name: &'static str, behaviour: Behaviour) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let server = Server::new(listener).config(ServerConfig::default());
        let addr = server.local_addr()?;
        let stats = server.stats();
        let counters = Arc::new(Counters::default());
        let service_counters = counters.clone();
        let service = tower::service_fn(move |req: Request<Incoming>| {
            let counters = service_counters.clone();
            async move {
                counters.in_flight.fetch_add(1, Ordering::Relaxed);
                let n = counters.served.fetch_add(1, Ordering::Relaxed) + 1;
                let res = answer(name, behaviour, n, req).await;
                counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                Ok::<_, Infallible>(res)
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve_with_shutdown(service, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            name,
            addr,
            stats,
            counters,
            stop,
            task,
        })
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn served(&self) -> u64 {
        self.counters.served.load(Ordering::Relaxed)
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.counters.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn connections(&self) -> u64 {
        self.stats.accepted_connections()
    }

    /// Stops accepting, lets in-flight requests finish, and reports.
    pub(crate) async fn shutdown(self) -> Result<StopReport, Box<dyn std::error::Error>> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(StopReport {
            served: self.counters.served.load(Ordering::Relaxed),
            connections: self.stats.accepted_connections(),
            failed_in_drain: self.counters.in_flight.load(Ordering::Relaxed),
        })
    }
}

async fn answer(
    name: &'static str,
    behaviour: Behaviour,
    n: u64,
    _req: Request<Incoming>,
) -> Response<Body> {
    let (delay, fail) = match behaviour {
        Behaviour::Healthy(delay) => (delay, false),
        Behaviour::Flaky(delay) => (delay, n.is_multiple_of(4)),
    };
    tokio::time::sleep(delay).await;
    let mut res = Response::new(Body::from(format!("hello from {name}\n")));
    if fail {
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        if n.is_multiple_of(32) {
            res.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
    }
    res
}

/// A loopback address where nothing listens: bound, read, and released.
pub(crate) async fn unused_address() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    listener.local_addr()
}
