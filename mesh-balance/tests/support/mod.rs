//! Fakes shared by the balancer tests: a channel-driven discovery stream and endpoint services whose
//! latency, status and readiness the test controls.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_balance::{Balance, BalanceConfig};
use mesh_core::{BoxError, Endpoint, EndpointKey, Locality};
use tokio::sync::mpsc;
use tower::ServiceExt;
use tower::discover::Change;
use tower_service::Service;

/// A discovery stream fed by a channel; pending while the channel is empty.
pub struct Discovery(mpsc::UnboundedReceiver<Change<EndpointKey, Endpoint>>);

impl futures_core::Stream for Discovery {
    type Item = Result<Change<EndpointKey, Endpoint>, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|c| c.map(Ok))
    }
}

/// The test's side of [`Discovery`].
#[derive(Clone)]
pub struct DiscoveryHandle(mpsc::UnboundedSender<Change<EndpointKey, Endpoint>>);

impl DiscoveryHandle {
    pub fn insert(&self, ep: &Endpoint) {
        self.0.send(Change::Insert(ep.key(), ep.clone())).unwrap();
    }
    pub fn remove(&self, ep: &Endpoint) {
        self.0.send(Change::Remove(ep.key())).unwrap();
    }
}

pub fn discovery() -> (DiscoveryHandle, Discovery) {
    let (tx, rx) = mpsc::unbounded_channel();
    (DiscoveryHandle(tx), Discovery(rx))
}

/// How one fake endpoint behaves, and what it saw.
pub struct Behaviour {
    pub latency: Mutex<Duration>,
    pub status: AtomicU16,
    pub retry_after: AtomicBool,
    /// Fail every other request (for the failure-rate detector).
    pub alternate: AtomicBool,
    pub ready: AtomicBool,
    /// Fail the next readiness check.
    pub fail_ready: AtomicBool,
    /// Services built for this endpoint (the balancer rebuilds a failed one).
    pub built: AtomicUsize,
    pub waker: Mutex<Option<Waker>>,
    pub hits: AtomicUsize,
    /// Fail every request with this error instead of answering.
    pub fail_with: Mutex<Option<fn() -> BoxError>>,
}

impl Behaviour {
    fn new() -> Self {
        Self {
            latency: Mutex::new(Duration::from_millis(10)),
            status: AtomicU16::new(200),
            retry_after: AtomicBool::new(false),
            alternate: AtomicBool::new(false),
            ready: AtomicBool::new(true),
            fail_ready: AtomicBool::new(false),
            built: AtomicUsize::new(0),
            waker: Mutex::new(None),
            hits: AtomicUsize::new(0),
            fail_with: Mutex::new(None),
        }
    }
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    pub fn set_latency(&self, d: Duration) {
        *self.latency.lock().unwrap() = d;
    }
    pub fn set_status(&self, s: u16) {
        self.status.store(s, Ordering::SeqCst);
    }
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        if ready && let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }
}

/// An endpoint service: answers after its latency with its status.
#[derive(Clone)]
pub struct Fake(pub Arc<Behaviour>);

pub type FakeFuture = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, BoxError>> + Send>>;

impl Service<Request<()>> for Fake {
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = FakeFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.0.fail_ready.swap(false, Ordering::SeqCst) {
            return Poll::Ready(Err("connection pool broken".into()));
        }
        if self.0.ready.load(Ordering::SeqCst) {
            Poll::Ready(Ok(()))
        } else {
            *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    fn call(&mut self, _req: Request<()>) -> FakeFuture {
        let b = self.0.clone();
        let n = b.hits.fetch_add(1, Ordering::SeqCst);
        let latency = *b.latency.lock().unwrap();
        let mut status = b.status.load(Ordering::SeqCst);
        if b.alternate.load(Ordering::SeqCst) {
            status = if n.is_multiple_of(2) { 500 } else { 200 };
        }
        let retry_after = b.retry_after.load(Ordering::SeqCst);
        let fail_with = *b.fail_with.lock().unwrap();
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            if let Some(error) = fail_with {
                return Err(error());
            }
            let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            if retry_after {
                res.headers_mut()
                    .insert("retry-after", http::HeaderValue::from_static("1"));
            }
            Ok(res)
        })
    }
}

/// A set of fake endpoints and the factory building their services.
#[derive(Clone, Default)]
pub struct Fleet {
    by_addr: Arc<Mutex<HashMap<SocketAddr, Arc<Behaviour>>>>,
}

pub type Make = Box<dyn Fn(&Endpoint) -> Fake + Send + Sync>;
pub type TestBalance = Balance<Discovery, Make>;

pub fn addr(n: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + n as u16))
}

impl Fleet {
    /// An endpoint with address `addr(n)`, weight and locality given.
    pub fn endpoint(
        &self,
        n: usize,
        weight: u32,
        locality: Locality,
    ) -> (Endpoint, Arc<Behaviour>) {
        let ep = Endpoint::builder(addr(n))
            .weight(weight)
            .locality(locality)
            .build()
            .unwrap();
        let b = Arc::new(Behaviour::new());
        self.by_addr.lock().unwrap().insert(addr(n), b.clone());
        (ep, b)
    }

    pub fn make(&self) -> Make {
        let by_addr = self.by_addr.clone();
        Box::new(move |ep: &Endpoint| {
            let b = by_addr.lock().unwrap()[&ep.addr()].clone();
            b.built.fetch_add(1, Ordering::SeqCst);
            Fake(b)
        })
    }
}

/// A balancer over `n` plain endpoints, with the fakes' behaviours.
pub fn balancer(
    n: usize,
    config: BalanceConfig,
) -> (TestBalance, DiscoveryHandle, Vec<Arc<Behaviour>>) {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let behaviours = (0..n)
        .map(|i| {
            let (ep, b) = fleet.endpoint(i, 1, Locality::default());
            handle.insert(&ep);
            b
        })
        .collect();
    let balance = Balance::new(discover, fleet.make(), config).unwrap();
    (balance, handle, behaviours)
}

/// One request through `balance`, body read to the end; the status.
pub async fn send(balance: &mut TestBalance) -> Result<StatusCode, BoxError> {
    let res = balance.ready().await?.call(Request::new(())).await?;
    let status = res.status();
    res.into_body().collect().await?;
    Ok(status)
}

/// `n` requests, one after the other.
pub async fn send_many(balance: &mut TestBalance, n: usize) {
    for _ in 0..n {
        send(balance).await.unwrap();
    }
}

/// `tasks` tasks, each with its own clone, sending `each` requests one after the other.
pub async fn send_concurrently(balance: &TestBalance, tasks: usize, each: usize) {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let mut clone = balance.clone();
        handles.push(tokio::spawn(
            async move { send_many(&mut clone, each).await },
        ));
    }
    for h in handles {
        h.await.unwrap();
    }
}

pub fn hits(behaviours: &[Arc<Behaviour>]) -> Vec<usize> {
    behaviours.iter().map(|b| b.hits()).collect()
}
