//! The demo's load generator: open-loop requests at a fixed rate, round robin over the targets.

use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use mesh_core::classify::{
    ClassifiedResponse, ClassifyEos, ClassifyResponse, MakeClassifier, MeshClassifier,
};
use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
use mesh_core::error::{ErrorResponse, ErrorResponseLayer, MESH_ERROR_HEADER};
use mesh_core::{Body, Endpoint};
use mesh_examples::stats::{EndpointStats, Outcome};
use tokio::time::{Instant, MissedTickBehavior};
use tower::{Layer, ServiceExt};

/// One endpoint the load goes to: its client stack and its statistics.
pub(crate) struct Target {
    pub(crate) name: &'static str,
    client: HttpClient<Body>,
    stack: ErrorResponse<HttpClient<Body>>,
    pub(crate) stats: EndpointStats,
}

impl Target {
    pub(crate) fn new(name: &'static str, endpoint: Endpoint, config: ClientConfig) -> Self {
        let client = HttpClient::new(endpoint, TcpConnector::new(), config);
        let stack = ErrorResponseLayer::new().layer(client.clone());
        Self {
            name,
            client,
            stack,
            stats: EndpointStats::default(),
        }
    }

    pub(crate) fn open_connections(&self) -> usize {
        self.client.open_connections()
    }
}

/// Sends one request and describes the answer's head: status and `mesh-error`, if any.
pub(crate) async fn probe(target: &Target) -> String {
    let req = Request::get("/probe")
        .body(Body::empty())
        .expect("static request parts are valid");
    let Ok(res) = target.stack.clone().oneshot(req).await;
    match res.headers().get(&MESH_ERROR_HEADER) {
        Some(cause) => format!(
            "{} with mesh-error: {}",
            res.status(),
            cause.to_str().unwrap_or("?")
        ),
        None => res.status().to_string(),
    }
}

/// Sends `rate` requests per second for `duration`, then waits for the last answers; returns the
/// number sent. Open loop: a slow answer does not delay the next request.
pub(crate) async fn run_load(
    targets: std::sync::Arc<[Target]>,
    rate: u32,
    duration: Duration,
) -> u64 {
    let period = Duration::from_secs(1) / rate;
    let mut tick = tokio::time::interval(period);
    // A late tick fires at once, then the schedule continues: the rate holds on average.
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let end = Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    while tick.tick().await < end {
        let index = (sent % targets.len() as u64) as usize;
        sent += 1;
        let targets = targets.clone();
        tasks.spawn(async move { one_request(&targets[index], sent).await });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    sent
}

async fn one_request(target: &Target, seq: u64) {
    let started = Instant::now();
    let req = Request::get(format!("/item/{seq}"))
        .header("user-agent", "mesh-demo")
        .body(Body::empty())
        .expect("static request parts are valid");
    let classifier = MeshClassifier::new().make_classifier(&req);
    let Ok(res) = target.stack.clone().oneshot(req).await;
    let local = res.headers().contains_key(&MESH_ERROR_HEADER);
    let verdict = classifier.classify_response(&res);
    // Read the body to the end: latency counts the whole answer, and the connection returns to the pool.
    let (trailers, body_failed) = match res.into_body().collect().await {
        Ok(collected) => (collected.trailers().cloned(), false),
        Err(_) => (None, true),
    };
    let outcome = if local || body_failed {
        Outcome::Error
    } else {
        let result = match verdict {
            ClassifiedResponse::Ready(result) => result,
            ClassifiedResponse::RequiresEos(eos) => eos.classify_eos(trailers.as_ref()),
        };
        match result {
            Ok(()) => Outcome::Success,
            Err(class) if class.is_overloaded() => Outcome::Overloaded,
            Err(_) => Outcome::Failure,
        }
    };
    target.stats.record(outcome, started.elapsed());
}
