//! The open-loop load: one GET every `1 / rate` seconds to sidecar A's outbound listener, whether
//! or not earlier ones were answered (a closed loop would slow down when the mesh does and hide
//! the requests a stall would have lost). Each request gets a status, or counts as lost.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Request;
use http::header::HOST;
use http_body_util::BodyExt;
use mesh_core::client::{ClientConfig, HttpClient, Protocol, TcpConnector};
use mesh_core::{Body, Endpoint};
use tower::{Service, ServiceExt};

/// The deadline of one request, answer and body included. Past it the request counts as lost:
/// sidecar A's own deadline per request is 15 s, so an answer (a `504` at worst) is due well
/// before.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(20);

/// Percentage of requests sent over HTTP/2 (prior knowledge); the rest use HTTP/1.1.
pub(crate) const HTTP2_PERCENT: u32 = 20;

/// HTTP/1.1 connections the load may open to A: above the requests in flight at the rates the
/// soak runs (400 req/s × a few ms), so the client's pool never delays the schedule.
const HTTP1_CONNECTIONS: usize = 512;

/// The counts at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Requests started.
    pub(crate) sent: u64,
    /// Answers by status code.
    pub(crate) by_status: BTreeMap<u16, u64>,
    /// Requests that failed without a response head (connection refused, reset…).
    pub(crate) transport_errors: u64,
    /// Requests sent to A with no answer (or no whole body) within [`REQUEST_DEADLINE`].
    pub(crate) timeouts: u64,
    /// Requests whose deadline passed while they still waited for one of the load's own
    /// HTTP/1.1 connections: never sent, so not the mesh's loss, but a sign that the load
    /// generator (or the machine) did not keep up.
    pub(crate) unsent: u64,
    /// Answers whose body failed after the status arrived (counted under their status too).
    pub(crate) cut_bodies: u64,
}

impl Counts {
    /// Requests answered with a status.
    pub(crate) fn answered(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// Requests lost without a status: transport errors and timeouts.
    pub(crate) fn lost(&self) -> u64 {
        self.transport_errors + self.timeouts
    }

    /// Answers other than `2xx`.
    pub(crate) fn errors(&self) -> u64 {
        self.by_status
            .iter()
            .filter(|(status, _)| !(200..300).contains(*status))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests still waiting for their outcome.
    pub(crate) fn in_flight(&self) -> u64 {
        self.sent
            .saturating_sub(self.answered() + self.lost() + self.unsent)
    }
}

/// The live counters the request tasks update.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    sent: AtomicU64,
    inner: Mutex<Counts>,
}

impl Counters {
    /// A consistent copy.
    pub(crate) fn snapshot(&self) -> Counts {
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone();
        counts.sent = self.sent.load(Ordering::SeqCst);
        counts
    }

    fn record(&self, outcome: Outcome) {
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Outcome::Status(status, cut) => {
                *counts.by_status.entry(status).or_default() += 1;
                if cut {
                    counts.cut_bodies += 1;
                }
            }
            Outcome::Transport => counts.transport_errors += 1,
            Outcome::Timeout => counts.timeouts += 1,
            Outcome::Unsent => counts.unsent += 1,
        }
    }
}

enum Outcome {
    /// The status and whether the body failed after it.
    Status(u16, bool),
    Transport,
    Timeout,
    Unsent,
}

/// Sends `rate` requests per second to `addr` for `duration`, then waits for every one of them
/// to end (at most [`REQUEST_DEADLINE`] each).
pub(crate) async fn run(
    addr: SocketAddr,
    rate: u64,
    duration: Duration,
    seed: u64,
    counters: Arc<Counters>,
) {
    let h1 = HttpClient::<Body>::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default().max_connections(HTTP1_CONNECTIONS),
    );
    let h2 = HttpClient::<Body>::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default().protocol(Protocol::Http2),
    );
    let mut rng = fastrand::Rng::with_seed(seed);
    let total = rate * duration.as_secs();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    // Behind schedule (a stalled runtime): send the missed requests at once, so the count and
    // the average rate hold.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        ticks.tick().await;
        let client = if rng.u32(0..100) < HTTP2_PERCENT {
            h2.clone()
        } else {
            h1.clone()
        };
        counters.sent.fetch_add(1, Ordering::SeqCst);
        let counters = counters.clone();
        tasks.spawn(async move {
            let outcome = one(client, n).await;
            counters.record(outcome);
        });
        // Reap finished tasks so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn one(client: HttpClient<Body>, n: u64) -> Outcome {
    let Ok(req) = Request::get(format!("http://orders/soak/{n}"))
        .header(HOST, "orders")
        .body(Body::empty())
    else {
        return Outcome::Transport;
    };
    let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE;
    let mut client = client;
    // Waiting for a free HTTP/1.1 connection of our own pool (HTTP/2 is always ready).
    let client = match tokio::time::timeout_at(deadline, client.ready()).await {
        Err(_) => return Outcome::Unsent,
        Ok(Err(_)) => return Outcome::Transport,
        Ok(Ok(client)) => client,
    };
    let exchange = async move {
        let Ok(res) = client.call(req).await else {
            return Outcome::Transport;
        };
        let status = res.status().as_u16();
        let cut = res.into_body().collect().await.is_err();
        Outcome::Status(status, cut)
    };
    tokio::time::timeout_at(deadline, exchange)
        .await
        .unwrap_or(Outcome::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_is_answered_lost_or_in_flight() {
        let counters = Counters::default();
        for _ in 0..7 {
            counters.sent.fetch_add(1, Ordering::SeqCst);
        }
        counters.record(Outcome::Status(200, false));
        counters.record(Outcome::Status(200, true));
        counters.record(Outcome::Status(503, false));
        counters.record(Outcome::Transport);
        counters.record(Outcome::Timeout);
        counters.record(Outcome::Unsent);
        let c = counters.snapshot();
        assert_eq!(
            (c.sent, c.answered(), c.lost(), c.in_flight()),
            (7, 3, 2, 1)
        );
        assert_eq!(c.unsent, 1);
        assert_eq!((c.errors(), c.cut_bodies), (1, 1));
        assert_eq!(c.by_status, BTreeMap::from([(200, 2), (503, 1)]));
    }
}
