//! xDS update latency and cost: how long an endpoint change takes from the control plane to the
//! balancer, and how much CPU the client spends on it.
//!
//! Two measurements, each at 10, 1 000 and 10 000 endpoints in one cluster:
//!
//! 1. **End to end, State-of-the-World and Delta.** The real control plane (`interop/xds-server`,
//!    go-control-plane, built with `go build`) on loopback; an [`XdsClient`] whose
//!    `discover(cluster)` feeds a mesh-balance [`Balance`]. Each of `PUSHES` pushes alternates
//!    between two endpoint sets that differ in a tenth of their endpoints (a rolling deploy). Per
//!    push: the time from sending `POST /snapshot` until the balancer has taken the whole diff
//!    (counted on the discovery stream the balancer polls), and, as a baseline on the same clock,
//!    the time the POST alone took (the Go server parsing the JSON and building the snapshot,
//!    which happens before it pushes anything). The client runs on a single-threaded runtime on
//!    this thread and the POSTs go out from another thread, so this thread's CPU time (from
//!    `CLOCK_THREAD_CPUTIME_ID`) over the pushes, divided by the pushes, is the client's CPU per
//!    update: gRPC/HTTP/2, protobuf decoding, validation and mapping, the handle's diff and the
//!    balancer applying it.
//! 2. **In process.** The same assignments encoded once as a `DiscoveryResponse`-sized
//!    `ClusterLoadAssignment`; CPU time of decoding alone (the baseline), and of decoding +
//!    [`endpoints_from_assignment`] + a mesh-balance handle's diff + draining that diff from its
//!    discovery stream.
//!
//! Run: `cargo bench -p towermesh-xds --bench update` (needs Go; prints "skipped" without it).
//! `XDS_BENCH_PUSHES` overrides the number of pushes per size (default 100).

#[path = "../tests/support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;
use http::{Request, Response};
use http_body_util::Empty;
use mesh_balance::discover::{DiscoverHandle, HandleDiscover};
use mesh_balance::{Balance, BalanceConfig};
use mesh_core::{Endpoint, EndpointKey};
use mesh_xds::envoy_types::pb::envoy::config::core::v3::{
    Address, SocketAddress, address, socket_address,
};
use mesh_xds::envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use mesh_xds::{ENDPOINT_TYPE_URL, Protocol, XdsClient, XdsConfig, endpoints_from_assignment};
use prost::Message;
use rustix::time::{ClockId, clock_gettime};
use serde_json::json;
use support::{ControlPlane, WAIT};
use tower::Service;
use tower::discover::Change;

const SIZES: [usize; 3] = [10, 1_000, 10_000];
const CLUSTER: &str = "orders";
const FIRST_PORT: u16 = 10_000;
const REPLACEMENT_PORT: u16 = 40_000;

fn main() {
    let pushes: usize = std::env::var("XDS_BENCH_PUSHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    println!("# xDS update latency ({pushes} pushes per size)\n");
    in_process(pushes);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(end_to_end(pushes));
}

/// The endpoint set of push `i`: even pushes set A, odd pushes set B, which replaces the first
/// tenth (at least one) of A's endpoints with others.
fn ports(n: usize, i: usize) -> Vec<u16> {
    let replaced = (n / 10).max(1);
    (0..n)
        .map(|k| match i % 2 == 1 && k < replaced {
            true => REPLACEMENT_PORT + k as u16,
            false => FIRST_PORT + k as u16,
        })
        .collect()
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

// ---------------------------------------------------------------------------------------------
// In process: decode (baseline) vs decode + map + diff.

fn assignment(ports: &[u16]) -> ClusterLoadAssignment {
    let lb_endpoints = ports
        .iter()
        .map(|&port| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(
                mesh_xds::envoy_types::pb::envoy::config::endpoint::v3::Endpoint {
                    address: Some(Address {
                        address: Some(address::Address::SocketAddress(SocketAddress {
                            address: "127.0.0.1".into(),
                            port_specifier: Some(socket_address::PortSpecifier::PortValue(
                                port.into(),
                            )),
                            ..Default::default()
                        })),
                    }),
                    ..Default::default()
                },
            )),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: CLUSTER.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn in_process(pushes: usize) {
    println!("## In process: CPU per update (median of {pushes})\n");
    println!("| endpoints | decode only (ms) | decode + map + diff + drain (ms) | ratio |");
    println!("|---:|---:|---:|---:|");
    let mut cx = Context::from_waker(Waker::noop());
    for n in SIZES {
        let encoded = [0, 1].map(|i| assignment(&ports(n, i)).encode_to_vec());
        let mut decode_only = Vec::with_capacity(pushes);
        for i in 0..pushes {
            let start = thread_cpu();
            let cla = ClusterLoadAssignment::decode(encoded[i % 2].as_slice()).unwrap();
            std::hint::black_box(&cla);
            decode_only.push(thread_cpu() - start);
        }
        let handle = DiscoverHandle::new();
        let mut discover = handle.discover();
        let mut full = Vec::with_capacity(pushes);
        let mut drained = 0;
        for i in 0..pushes {
            let start = thread_cpu();
            let cla = ClusterLoadAssignment::decode(encoded[i % 2].as_slice()).unwrap();
            let endpoints = endpoints_from_assignment(&cla, 20_000).unwrap();
            handle.set(endpoints);
            while let Poll::Ready(change) = discover.poll_next_change(&mut cx) {
                std::hint::black_box(&change);
                drained += 1;
            }
            full.push(thread_cpu() - start);
        }
        let replaced = (n / 10).max(1);
        assert_eq!(
            drained,
            n + (pushes - 1) * 2 * replaced,
            "every change drained"
        );
        decode_only.sort();
        full.sort();
        let (base, all) = (percentile(&decode_only, 0.5), percentile(&full, 0.5));
        println!(
            "| {n} | {:.3} | {:.3} | {:.1}× |",
            ms(base),
            ms(all),
            all.as_secs_f64() / base.as_secs_f64().max(1e-9)
        );
    }
    println!();
}

// ---------------------------------------------------------------------------------------------
// End to end.

/// An always-ready endpoint service answering at once: the balancer's own cost only.
#[derive(Clone, Copy, Debug)]
struct NoOp;

impl Service<Request<()>> for NoOp {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(Empty::new())))
    }
}

/// The balancer's discovery stream, counting the changes the balancer took from it.
struct Counted {
    inner: HandleDiscover,
    taken: Arc<AtomicUsize>,
}

impl Stream for Counted {
    type Item = Result<Change<EndpointKey, Endpoint>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(_)) = next {
            self.taken.fetch_add(1, Ordering::Relaxed);
        }
        next
    }
}

fn snapshot_body(version: usize, ports: &[u16]) -> String {
    let endpoints: Vec<_> = ports
        .iter()
        .map(|port| json!({"addr": "127.0.0.1", "port": port}))
        .collect();
    json!({
        "node": "bench-node",
        "version": format!("v{version}"),
        "clusters": [{"name": CLUSTER}],
        "endpoints": [{"cluster": CLUSTER, "endpoints": endpoints}],
    })
    .to_string()
}

/// One blocking HTTP/1.1 POST /snapshot; returns when the server answered 204.
fn post_snapshot(http: SocketAddr, body: &str) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(http).unwrap();
    stream.set_nodelay(true).unwrap();
    write!(
        stream,
        "POST /snapshot HTTP/1.1\r\nhost: {http}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 204"), "{response}");
}

/// Posts snapshots from a thread of its own, so that this thread's CPU time is the client's.
struct Poster {
    tx: std::sync::mpsc::Sender<Arc<String>>,
    done: tokio::sync::mpsc::UnboundedReceiver<Duration>,
}

impl Poster {
    fn start(http: SocketAddr) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Arc<String>>();
        let (done_tx, done) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for body in rx {
                let start = Instant::now();
                post_snapshot(http, &body);
                if done_tx.send(start.elapsed()).is_err() {
                    return;
                }
            }
        });
        Self { tx, done }
    }

    /// Starts a POST; returns the instant just before it was handed over.
    fn post(&self, body: Arc<String>) -> Instant {
        let start = Instant::now();
        self.tx.send(body).unwrap();
        start
    }
}

type Balancer = Balance<Counted, fn(&Endpoint) -> NoOp>;

fn no_op(_: &Endpoint) -> NoOp {
    NoOp
}

/// Polls a fresh clone of the balancer until it took `target` changes in all. The xDS client's
/// status says when an EDS update was applied to the handle; the balancer takes it on its next
/// poll (a clone starts without a reservation, so each poll reads discovery).
async fn balancer_takes(
    balance: &Balancer,
    taken: &AtomicUsize,
    status: &mut tokio::sync::watch::Receiver<mesh_xds::XdsStatus>,
    target: usize,
) {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        while taken.load(Ordering::Relaxed) < target {
            let before = taken.load(Ordering::Relaxed);
            let mut probe = balance.clone();
            // Ready, or "no endpoints" before the first set: either way discovery was read.
            let _ = Service::<Request<()>>::poll_ready(&mut probe, &mut cx);
            drop(probe);
            if taken.load(Ordering::Relaxed) == before {
                // Nothing new on the handle yet: wait for the client to apply the next update.
                break;
            }
        }
        if taken.load(Ordering::Relaxed) >= target {
            return;
        }
        tokio::time::timeout(WAIT, status.changed())
            .await
            .expect("an xDS update in time")
            .expect("client alive");
    }
}

struct Row {
    protocol: &'static str,
    n: usize,
    p50: Duration,
    p99: Duration,
    post_p50: Duration,
    post_p99: Duration,
    cpu: Duration,
}

async fn end_to_end(pushes: usize) {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let mut poster = Poster::start(cp.http);
    let mut rows = Vec::new();
    for (protocol, name) in [
        (Protocol::StateOfTheWorld, "SotW"),
        (Protocol::Delta, "Delta"),
    ] {
        for n in SIZES {
            let bodies: Vec<Arc<String>> = (0..=pushes)
                .map(|i| Arc::new(snapshot_body(i, &ports(n, i))))
                .collect();
            // A fresh client per size; the first snapshot loads the cluster, untimed.
            poster.post(bodies[0].clone());
            poster.done.recv().await.unwrap();
            let config = XdsConfig::new(cp.uri(), "bench-node")
                .protocol(protocol)
                .seed(1);
            let client = XdsClient::connect(config).await.unwrap();
            let taken = Arc::new(AtomicUsize::new(0));
            let discover = Counted {
                inner: client.discover(CLUSTER),
                taken: taken.clone(),
            };
            let balance: Balancer = Balance::new(
                discover,
                no_op as fn(&Endpoint) -> NoOp,
                BalanceConfig::default(),
            )
            .unwrap();
            let mut status = client.status();
            balancer_takes(&balance, &taken, &mut status, n).await;

            let replaced = (n / 10).max(1);
            let mut latencies = Vec::with_capacity(pushes);
            let mut posts = Vec::with_capacity(pushes);
            let cpu_start = thread_cpu();
            for (i, body) in bodies.iter().enumerate().skip(1) {
                let target = n + i * 2 * replaced;
                let start = poster.post(body.clone());
                balancer_takes(&balance, &taken, &mut status, target).await;
                latencies.push(start.elapsed());
                posts.push(poster.done.recv().await.unwrap());
            }
            let cpu = (thread_cpu() - cpu_start) / pushes as u32;

            // The balancer holds exactly the last pushed set.
            let mut held: Vec<u16> = balance.endpoints().iter().map(|e| e.addr.port()).collect();
            held.sort_unstable();
            let mut expected = ports(n, pushes);
            expected.sort_unstable();
            assert_eq!(
                held, expected,
                "{name} {n}: the balancer holds the last set"
            );
            let accepted = client
                .status()
                .borrow()
                .accepted
                .get(ENDPOINT_TYPE_URL)
                .copied();
            assert!(
                accepted >= Some(pushes as u64 + 1),
                "{name} {n}: every push accepted"
            );

            latencies.sort();
            posts.sort();
            rows.push(Row {
                protocol: name,
                n,
                p50: percentile(&latencies, 0.5),
                p99: percentile(&latencies, 0.99),
                post_p50: percentile(&posts, 0.5),
                post_p99: percentile(&posts, 0.99),
                cpu,
            });
            eprintln!("done: {name} {n}");
        }
    }
    println!("## End to end: POST /snapshot → balancer holds the new set\n");
    println!(
        "| protocol | endpoints | push→apply p50 (ms) | p99 (ms) | POST alone p50 (ms) | p99 (ms) | \
         p50 ratio push→apply / POST | client CPU per update (ms) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}× | {:.3} |",
            r.protocol,
            r.n,
            ms(r.p50),
            ms(r.p99),
            ms(r.post_p50),
            ms(r.post_p99),
            r.p50.as_secs_f64() / r.post_p50.as_secs_f64().max(1e-9),
            ms(r.cpu),
        );
    }
}
