//! The crate's OpenTelemetry metrics, read back from an in-memory SDK exporter: names, units,
//! attributes and values after driving each layer on a paused clock.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use mesh_core::BoxError;
use mesh_core::error::{ConnectError, UpstreamError};
use mesh_retry::body::ReplayBody;
use mesh_retry::breaker::{BreakerConfig, BreakerState, CircuitBreakerLayer};
use mesh_retry::budget::{WindowBudget, WindowBudgetConfig};
use mesh_retry::hedge::{HedgeConfig, HedgeDelay, HedgeLayer};
use mesh_retry::limit::{
    ConcurrencyConfig, ConcurrencyLimitLayer, RateLimitConfig, RateLimitLayer, VegasConfig,
};
use mesh_retry::retry::{ExponentialBackoff, RetryLayer, RetryPolicy};
use mesh_retry::timeout::{RequestTimeoutLayer, TimeoutConfig};
use mesh_test::response::status;
use mesh_test::{Attributes, TestMetrics};
use tokio::time::{Instant, advance, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};

type Metrics = TestMetrics;

fn get(body: &'static str) -> Request<Full<Bytes>> {
    Request::get("http://orders/items")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// What a scripted backend does with one call.
#[derive(Clone, Copy, Debug)]
enum Step {
    Answer(u16),
    /// Fails with `ConnectError`.
    Refused,
    /// Fails with an `UpstreamError` whose request was never sent.
    NotSent,
    /// Answers 200 after a minute.
    Hang,
}

type Script = Arc<Mutex<VecDeque<Step>>>;

/// A backend that reads the whole request body, then plays the next step of `script` (200 once
/// the script is over).
fn scripted(
    script: Script,
) -> impl Service<Request<ReplayBody<Full<Bytes>>>, Response = Response<()>, Error = BoxError> + Clone
{
    service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        let step = script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Step::Answer(200));
        async move {
            req.into_body().collect().await?;
            match step {
                Step::Answer(code) => Ok(status(code)),
                Step::Refused => Err(ConnectError::new("connection refused").into()),
                Step::NotSent => Err(UpstreamError::unsent("stream refused").into()),
                Step::Hang => {
                    sleep(Duration::from_secs(60)).await;
                    Ok(status(200))
                }
            }
        }
    })
}

fn script(steps: &[Step]) -> Script {
    Arc::new(Mutex::new(steps.iter().copied().collect()))
}

fn retry_policy() -> RetryPolicy {
    RetryPolicy::default()
        .seed(7)
        .backoff(ExponentialBackoff::none())
}

fn empty_budget() -> WindowBudget {
    WindowBudget::new(WindowBudgetConfig::default().ratio(0.0).min_per_sec(0)).unwrap()
}

#[tokio::test(start_paused = true)]
async fn retries_are_counted_by_reason() {
    let metrics = Metrics::new();
    let steps = script(&[
        // Request 1: connect error, then 503, then success.
        Step::Refused,
        Step::Answer(503),
        Step::Answer(200),
        // Request 2: never sent, then a per-try timeout, then success.
        Step::NotSent,
        Step::Hang,
        Step::Answer(200),
    ]);
    let policy = retry_policy()
        .max_attempts(3)
        .per_try_timeout(Some(Duration::from_secs(1)));
    let layer = RetryLayer::new(policy).unwrap().meter(metrics.meter());
    let service = layer.layer(scripted(steps.clone()));
    for _ in 0..2 {
        let res = service.clone().oneshot(get("")).await.unwrap();
        assert_eq!(res.status(), 200);
    }
    assert!(steps.lock().unwrap().is_empty());

    let retries = metrics.counter("mesh.retry.retries", "{retry}");
    for reason in ["connect", "status", "not_sent", "timeout"] {
        assert_eq!(
            retries.value(&[("mesh.retry.reason", reason)]),
            1,
            "{reason}"
        );
    }
    assert_eq!(retries.total(), 4, "{:?}", retries.points);
    // The other reasons read 0 (present from the start), as does every refusal.
    assert_eq!(retries.points.len(), 7, "{:?}", retries.attribute_sets());
    assert_eq!(
        metrics
            .counter("mesh.retry.budget_exhausted", "{retry}")
            .total(),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn budget_refusals_are_counted_with_the_reason_of_the_failure() {
    let metrics = Metrics::new();
    let steps = script(&[Step::Answer(503), Step::Answer(502), Step::Refused]);
    let layer = RetryLayer::new(retry_policy())
        .unwrap()
        .budget(empty_budget())
        .meter(metrics.meter());
    let service = layer.layer(scripted(steps.clone()));
    assert_eq!(
        service.clone().oneshot(get("")).await.unwrap().status(),
        503
    );
    assert_eq!(
        service.clone().oneshot(get("")).await.unwrap().status(),
        502
    );
    assert!(service.clone().oneshot(get("")).await.is_err());

    let exhausted = metrics.counter("mesh.retry.budget_exhausted", "{retry}");
    assert_eq!(exhausted.value(&[("mesh.retry.reason", "status")]), 2);
    assert_eq!(exhausted.value(&[("mesh.retry.reason", "connect")]), 1);
    assert_eq!(exhausted.total(), 3);
    // Refused retries are not retries.
    assert_eq!(metrics.counter("mesh.retry.retries", "{retry}").total(), 0);
}

#[tokio::test(start_paused = true)]
async fn bodies_past_the_replay_cap_are_counted_as_not_replayable() {
    let metrics = Metrics::new();
    let steps = script(&[Step::Answer(503), Step::Answer(503)]);
    let layer = RetryLayer::new(retry_policy().replay_cap(4))
        .unwrap()
        .meter(metrics.meter());
    let service = layer.layer(scripted(steps.clone()));
    // 16 bytes against a 4-byte cap: the 503 is returned as it is.
    let res = service
        .clone()
        .oneshot(get("0123456789abcdef"))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    // Within the cap: retried.
    let res = service.clone().oneshot(get("abc")).await.unwrap();
    assert_eq!(res.status(), 200);

    let not_replayable = metrics.counter("mesh.retry.not_replayable", "{retry}");
    assert_eq!(
        not_replayable.value(&[("mesh.retry.replay_status", "capped")]),
        1
    );
    assert_eq!(not_replayable.total(), 1);
    let retries = metrics.counter("mesh.retry.retries", "{retry}");
    assert_eq!(retries.value(&[("mesh.retry.reason", "status")]), 1);
}

#[tokio::test(start_paused = true)]
async fn expired_deadlines_and_malformed_grpc_timeouts_are_counted() {
    let metrics = Metrics::new();
    let layer = RequestTimeoutLayer::new(
        TimeoutConfig::default()
            .timeout(Some(Duration::from_secs(2)))
            .meter(metrics.meter()),
    );
    let service = layer.layer(service_fn(|req: Request<()>| async move {
        if req.uri().path() == "/slow" {
            sleep(Duration::from_secs(60)).await;
        }
        Ok::<_, Infallible>(Response::new(()))
    }));
    let request = |path: &str, grpc_timeout: Option<&str>| {
        let mut builder = Request::post(format!("http://orders{path}"))
            .header("content-type", "application/grpc");
        if let Some(value) = grpc_timeout {
            builder = builder.header("grpc-timeout", value);
        }
        builder.body(()).unwrap()
    };
    let started = Instant::now();
    let err = service
        .clone()
        .oneshot(request("/slow", None))
        .await
        .unwrap_err();
    assert!(err.is::<mesh_core::error::Timeout>());
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    // The caller's 100 ms deadline is honoured and counted the same way.
    let err = service
        .clone()
        .oneshot(request("/slow", Some("100m")))
        .await
        .unwrap_err();
    assert!(err.is::<mesh_core::error::Timeout>());
    // Fast requests, one with a malformed header (ignored), are not counted as expired.
    service
        .clone()
        .oneshot(request("/fast", None))
        .await
        .unwrap();
    service
        .clone()
        .oneshot(request("/fast", Some("1.5S")))
        .await
        .unwrap();

    let expired = metrics.counter("mesh.timeout.expired", "{request}");
    assert_eq!(expired.value(&[]), 2);
    assert_eq!(expired.points.len(), 1);
    let malformed = metrics.counter("mesh.timeout.grpc_timeout_malformed", "{request}");
    assert_eq!(malformed.value(&[]), 1);
}

#[tokio::test(start_paused = true)]
async fn hedges_sent_won_and_refused_are_counted() {
    let metrics = Metrics::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    // Per call: how long it takes to answer, with the call number as the body.
    let delays = [60_000, 0, 100, 200, 0];
    let backend = service_fn(move |_req: Request<ReplayBody<Empty<Bytes>>>| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            sleep(Duration::from_millis(delays[n])).await;
            Ok::<_, Infallible>(Response::new(n))
        }
    });
    let layer = HedgeLayer::new(
        HedgeConfig::default()
            .delay(HedgeDelay::Fixed(Duration::from_millis(50)))
            .meter(metrics.meter()),
    )
    .unwrap();
    let service = layer.layer(backend);
    let request = || {
        Request::get("http://orders/items")
            .body(Empty::new())
            .unwrap()
    };
    // Call 0 hangs, the hedge (call 1) wins.
    assert_eq!(*service.clone().oneshot(request()).await.unwrap().body(), 1);
    // Call 2 answers at 100 ms, before its hedge (call 3, sent at 50 ms, answers at 250 ms).
    assert_eq!(*service.clone().oneshot(request()).await.unwrap().body(), 2);
    // Call 4 answers before the delay: no hedge.
    assert_eq!(*service.clone().oneshot(request()).await.unwrap().body(), 4);
    assert_eq!(calls.load(Ordering::SeqCst), 5);

    assert_eq!(metrics.counter("mesh.hedge.sent", "{hedge}").value(&[]), 2);
    assert_eq!(metrics.counter("mesh.hedge.won", "{hedge}").value(&[]), 1);
    assert_eq!(
        metrics
            .counter("mesh.hedge.budget_exhausted", "{hedge}")
            .value(&[]),
        0
    );

    // With an empty budget the hedge is refused and counted.
    let refusing = HedgeLayer::new(
        HedgeConfig::default()
            .delay(HedgeDelay::Fixed(Duration::from_millis(50)))
            .meter(metrics.meter()),
    )
    .unwrap()
    .drawing_from(empty_budget())
    .layer(service_fn(
        |_req: Request<ReplayBody<Empty<Bytes>>>| async {
            sleep(Duration::from_millis(100)).await;
            Ok::<_, Infallible>(Response::new(0_usize))
        },
    ));
    refusing.oneshot(request()).await.unwrap();
    let refused = metrics.counter("mesh.hedge.budget_exhausted", "{hedge}");
    assert_eq!(refused.value(&[]), 1);
    assert_eq!(metrics.counter("mesh.hedge.sent", "{hedge}").value(&[]), 2);
}

#[tokio::test(start_paused = true)]
async fn breaker_state_transitions_and_rejections_are_recorded() {
    let metrics = Metrics::new();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = failing.clone();
    let backend = service_fn(move |_req: Request<()>| {
        let code = if flag.load(Ordering::SeqCst) {
            500
        } else {
            200
        };
        async move { Ok::<_, Infallible>(status(code)) }
    });
    let layer = CircuitBreakerLayer::new(
        BreakerConfig::new()
            .consecutive_failures(2)
            .open_duration(Duration::from_secs(5), 1.0, Duration::from_secs(5))
            .jitter(0.0)
            .name("orders")
            .meter(metrics.meter()),
    )
    .unwrap();
    let breaker = layer.layer(backend);
    let handle = breaker.handle().clone();
    let name = ("mesh.breaker.name", "orders");

    // The gauge starts at closed.
    let state = metrics.gauge("mesh.breaker.state", "{state}");
    assert_eq!(state.labelled(), vec![(attrs(&[name]), 0)]);

    for _ in 0..2 {
        let res = breaker.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), 500);
    }
    assert_eq!(handle.state(), BreakerState::Open);
    for _ in 0..3 {
        let err = breaker.clone().oneshot(Request::new(())).await.unwrap_err();
        assert!(err.is::<mesh_core::error::CircuitOpen>());
    }
    assert_eq!(
        metrics
            .gauge("mesh.breaker.state", "{state}")
            .value(&[name]),
        2
    );
    let rejected = metrics.counter("mesh.breaker.rejected", "{request}");
    assert_eq!(rejected.labelled(), vec![(attrs(&[name]), 3)]);

    // After the open period one probe goes through, succeeds, and the breaker closes.
    advance(Duration::from_secs(5)).await;
    failing.store(false, Ordering::SeqCst);
    let res = breaker.clone().oneshot(Request::new(())).await.unwrap();
    drop(res);
    assert_eq!(handle.state(), BreakerState::Closed);

    let transitions = metrics.counter("mesh.breaker.transitions", "{transition}");
    let edge =
        |from, to| transitions.value(&[("mesh.breaker.from", from), ("mesh.breaker.to", to), name]);
    assert_eq!(edge("closed", "open"), 1);
    assert_eq!(edge("open", "half_open"), 1);
    assert_eq!(edge("half_open", "closed"), 1);
    // Every transition has a series from the start; this one never happened.
    assert_eq!(edge("half_open", "open"), 0);
    assert_eq!(
        transitions.points.len(),
        4,
        "{:?}",
        transitions.attribute_sets()
    );
    assert_eq!(
        metrics
            .gauge("mesh.breaker.state", "{state}")
            .value(&[name]),
        0
    );
}

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn limit_rejections_are_counted_by_kind_and_name() {
    let metrics = Metrics::new();
    let backend = || {
        // A non-empty body: the concurrency permit is held until it is read or dropped.
        service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        })
    };
    let concurrency = ConcurrencyLimitLayer::new(
        ConcurrencyConfig::fixed(1)
            .name("db")
            .meter(metrics.meter()),
    )
    .unwrap();
    let mut limited = concurrency.layer(backend());
    let held = limited
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    for _ in 0..2 {
        let err = limited
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap_err();
        assert!(err.is::<mesh_core::error::Overloaded>());
    }
    drop(held);

    let rate = RateLimitLayer::new(
        RateLimitConfig::per_second(1.0)
            .burst(1)
            .name("api")
            .meter(metrics.meter()),
    )
    .unwrap();
    let rate_limited = rate.layer(backend());
    rate_limited
        .clone()
        .oneshot(Request::new(()))
        .await
        .unwrap();
    let err = rate_limited
        .clone()
        .oneshot(Request::new(()))
        .await
        .unwrap_err();
    assert!(err.is::<mesh_core::error::RateLimited>());

    let rejected = metrics.counter("mesh.limit.rejected", "{request}");
    let concurrency = [
        ("mesh.limit.kind", "concurrency"),
        ("mesh.limit.name", "db"),
    ];
    let rate = [("mesh.limit.kind", "rate"), ("mesh.limit.name", "api")];
    assert_eq!(rejected.value(&concurrency), 2);
    assert_eq!(rejected.value(&rate), 1);
    assert_eq!(rejected.points.len(), 2, "{:?}", rejected.attribute_sets());
    let limit = metrics.gauge("mesh.limit.concurrency", "{request}");
    assert_eq!(limit.labelled(), vec![(attrs(&concurrency), 1)]);
}

/// The adaptive limit's gauge follows the limit: 30 closed-loop clients against a backend whose
/// latency grows past 10 requests in flight move it away from where it starts.
#[tokio::test(start_paused = true)]
async fn the_adaptive_limit_gauge_follows_the_limit() {
    const KNEE: usize = 10;
    let metrics = Metrics::new();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let counter = in_flight.clone();
    let backend = service_fn(move |_req: Request<()>| {
        let counter = counter.clone();
        async move {
            let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let latency = 10 * (1 + now.saturating_sub(KNEE) as u64);
            sleep(Duration::from_millis(latency)).await;
            counter.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Infallible>(Response::new(String::new()))
        }
    });
    let layer = ConcurrencyLimitLayer::new(
        ConcurrencyConfig::adaptive(VegasConfig::new().limits(20, 3, 100))
            .name("adaptive")
            .meter(metrics.meter()),
    )
    .unwrap();
    let service = layer.layer(backend);
    let handle = service.handle().clone();
    let attributes = [
        ("mesh.limit.kind", "concurrency"),
        ("mesh.limit.name", "adaptive"),
    ];
    // Vegas starts by measuring the minimum latency at `min_limit`.
    let initial = handle.limit();
    assert_eq!(initial, 3);
    let gauge = metrics.gauge("mesh.limit.concurrency", "{request}");
    assert_eq!(gauge.labelled(), vec![(attrs(&attributes), 3)]);

    let deadline = Instant::now() + Duration::from_secs(3);
    let mut clients = Vec::new();
    for _ in 0..30 {
        let mut service = service.clone();
        clients.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match service.ready().await.unwrap().call(Request::new(())).await {
                    Ok(res) => drop(res.into_body().collect().await.unwrap()),
                    Err(_) => sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let limit = handle.limit();
    assert_ne!(limit, initial, "the limit should have moved");
    let gauge = metrics.gauge("mesh.limit.concurrency", "{request}");
    assert_eq!(
        gauge.labelled(),
        vec![(attrs(&attributes), i64::from(limit))]
    );
    let rejected = metrics.counter("mesh.limit.rejected", "{request}");
    assert!(
        rejected.value(&attributes) > 0,
        "30 clients over the limit are shed"
    );
}

/// Prometheus' `increase()` skips the step from "no series" to the first sample: every counter
/// must have a 0 point for each of its attribute sets as soon as its layer is built.
#[tokio::test(start_paused = true)]
async fn counters_start_at_zero_for_every_label_set() {
    let metrics = Metrics::new();
    let upstream = service_fn(|_req: Request<ReplayBody<Empty<Bytes>>>| async {
        Ok::<_, Infallible>(Response::new(()))
    });
    let _retry = RetryLayer::new(retry_policy())
        .unwrap()
        .meter(metrics.meter())
        .layer(upstream);
    let _hedge = HedgeLayer::new(HedgeConfig::default().meter(metrics.meter()))
        .unwrap()
        .layer(upstream);
    let _timeout =
        RequestTimeoutLayer::new(TimeoutConfig::default().meter(metrics.meter())).layer(upstream);
    let _breaker =
        CircuitBreakerLayer::new(BreakerConfig::new().name("orders").meter(metrics.meter()))
            .unwrap()
            .layer(upstream);
    let _limit = ConcurrencyLimitLayer::new(
        ConcurrencyConfig::fixed(8)
            .name("inbound")
            .meter(metrics.meter()),
    )
    .unwrap()
    .layer(upstream);

    let reasons = [
        "connect",
        "not_sent",
        "timeout",
        "transport",
        "status",
        "overloaded",
        "grpc_status",
    ];
    for name in ["mesh.retry.retries", "mesh.retry.budget_exhausted"] {
        let counter = metrics.counter(name, "{retry}");
        for reason in reasons {
            let wanted = attrs(&[("mesh.retry.reason", reason)]);
            assert!(
                counter.labelled().contains(&(wanted, 0)),
                "{name} {reason}: {:?}",
                counter.points
            );
        }
        assert_eq!(counter.points.len(), reasons.len());
    }
    let not_replayable = metrics.counter("mesh.retry.not_replayable", "{retry}");
    for status in ["capped", "body_failed", "passthrough"] {
        let wanted = attrs(&[("mesh.retry.replay_status", status)]);
        assert!(not_replayable.labelled().contains(&(wanted, 0)), "{status}");
    }
    for (name, unit) in [
        ("mesh.hedge.sent", "{hedge}"),
        ("mesh.hedge.won", "{hedge}"),
        ("mesh.hedge.budget_exhausted", "{hedge}"),
        ("mesh.timeout.expired", "{request}"),
        ("mesh.timeout.grpc_timeout_malformed", "{request}"),
    ] {
        assert_eq!(
            metrics.counter(name, unit).labelled(),
            vec![(attrs(&[]), 0)],
            "{name}"
        );
    }
    let name = ("mesh.breaker.name", "orders");
    let transitions = metrics.counter("mesh.breaker.transitions", "{transition}");
    for (from, to) in [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("half_open", "closed"),
    ] {
        let wanted = attrs(&[("mesh.breaker.from", from), ("mesh.breaker.to", to), name]);
        assert!(
            transitions.labelled().contains(&(wanted, 0)),
            "{from} → {to}"
        );
    }
    assert_eq!(
        metrics
            .counter("mesh.breaker.rejected", "{request}")
            .labelled(),
        vec![(attrs(&[name]), 0)]
    );
    assert_eq!(
        metrics
            .counter("mesh.limit.rejected", "{request}")
            .labelled(),
        vec![(
            attrs(&[
                ("mesh.limit.kind", "concurrency"),
                ("mesh.limit.name", "inbound")
            ]),
            0
        )]
    );
}
