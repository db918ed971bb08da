//! The demo's load generator and what it counts: open-loop requests at a fixed rate through the
//! client stack, each answer attributed to the cloud whose backend sent it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use mesh_core::Body;
use mesh_examples::stats::{EndpointStats, Outcome};
use tokio::time::{Instant, MissedTickBehavior};
use tower::ServiceExt;

use crate::backend::BACKEND_HEADER;
use crate::mesh::{CLOUDS, Client, INSTANCES};
use crate::tally::outcome_of;

/// Answers per cloud: since the last table, and for the two phases of the run.
#[derive(Debug, Default)]
pub(crate) struct ZoneCounts {
    /// `[interval, before the local cloud went down, after]` × cloud.
    counts: Mutex<[[u64; 2]; 3]>,
}

impl ZoneCounts {
    fn record(&self, cloud: usize, after_kill: bool) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts[0][cloud] += 1;
        counts[1 + usize::from(after_kill)][cloud] += 1;
    }

    /// Answers per cloud since the last call.
    pub(crate) fn rotate(&self) -> [u64; 2] {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut counts[0])
    }

    /// Answers per cloud before (`false`) or after (`true`) the local cloud went down.
    pub(crate) fn phase(&self, after_kill: bool) -> [u64; 2] {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts[1 + usize::from(after_kill)]
    }
}

/// What the load generator counts, read by the table printer.
#[derive(Debug, Default)]
pub(crate) struct Board {
    /// Final answers to the caller: outcome and latency to the end of the body.
    pub(crate) requests: EndpointStats,
    pub(crate) zones: ZoneCounts,
    /// Set when the local cloud's backends are told to stop.
    pub(crate) after_kill: std::sync::atomic::AtomicBool,
    pub(crate) sent: AtomicU64,
}

/// Sends `rate` requests per second for `duration`, then waits for the last answers. Open loop: a
/// slow answer does not delay the next request.
pub(crate) async fn run_load(
    client: Client,
    board: std::sync::Arc<Board>,
    rate: u32,
    duration: Duration,
) {
    let period = Duration::from_secs(1) / rate;
    let mut tick = tokio::time::interval(period);
    // A late tick fires at once, then the schedule continues: the rate holds on average.
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let end = Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    while tick.tick().await < end {
        let seq = board.sent.fetch_add(1, Ordering::Relaxed);
        let client = client.clone();
        let board = board.clone();
        tasks.spawn(async move { one_request(client, &board, seq).await });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn one_request(client: Client, board: &Board, seq: u64) {
    let started = Instant::now();
    let req = Request::get(format!("http://demo.mesh/item/{seq}"))
        .header("user-agent", "mesh-demo")
        .body(Body::empty())
        .expect("static request parts are valid");
    let outcome = match client.oneshot(req).await {
        Ok(res) => {
            let outcome = outcome_of(res.status(), res.headers());
            let cloud = res
                .headers()
                .get(&BACKEND_HEADER)
                .and_then(|name| {
                    INSTANCES
                        .iter()
                        .find(|i| i.name.as_bytes() == name.as_bytes())
                })
                .map(|i| i.cloud);
            // Read to the end: latency counts the whole answer, and the balancer's measurement
            // (and the breaker's) end with the body.
            let outcome = match res.into_body().collect().await {
                Ok(_) => outcome,
                Err(_) => Outcome::Error,
            };
            if let Some(cloud) = cloud {
                board
                    .zones
                    .record(cloud, board.after_kill.load(Ordering::Relaxed));
            }
            outcome
        }
        Err(_) => Outcome::Error,
    };
    board.requests.record(outcome, started.elapsed());
}

/// `cloud-a 97.0% | cloud-b 3.0%`, or `-` with no answers.
pub(crate) fn zone_shares(counts: [u64; 2]) -> String {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return "-".to_owned();
    }
    let parts: Vec<String> = CLOUDS
        .iter()
        .zip(counts)
        .map(|(cloud, n)| format!("{} {:5.1}%", cloud.name, n as f64 * 100.0 / total as f64))
        .collect();
    parts.join(" | ")
}
