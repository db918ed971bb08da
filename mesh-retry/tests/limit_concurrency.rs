//! Concurrency limit: fail fast, wait, release at body end, and the adaptive (Vegas) limit on a
//! simulated latency curve.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use mesh_core::BoxError;
use mesh_core::error::{Overloaded, Timeout};
use mesh_retry::limit::concurrency::LimitBody;
use mesh_retry::limit::{
    ConcurrencyConfig, ConcurrencyLimit, ConcurrencyLimitLayer, OverLimit, Vegas, VegasConfig,
};
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_test::mock::{self, Mock, Spawn};

type Req = Request<String>;
type Res = Response<String>;
type Limited = Spawn<ConcurrencyLimit<Mock<Req, Res>>>;
type Backend = mock::Handle<Req, Res>;

fn setup(config: ConcurrencyConfig) -> (Limited, Backend) {
    mock::spawn_layer(ConcurrencyLimitLayer::new(config).unwrap())
}

async fn exchange(
    svc: &mut Limited,
    backend: &mut Backend,
) -> Result<Response<LimitBody<String>>, BoxError> {
    assert_ready_ok!(svc.poll_ready());
    let future = svc.call(Request::new(String::new()));
    let (_, reply) = backend.next_request().await.unwrap();
    reply.send_response(Response::new(String::from("body")));
    future.await
}

async fn assert_shed(svc: &mut Limited, backend: &mut Backend) {
    assert_ready_ok!(svc.poll_ready(), "fail-fast mode stays ready");
    let err = svc.call(Request::new(String::new())).await.unwrap_err();
    assert!(err.is::<Overloaded>(), "expected Overloaded, got {err}");
    let mut next = task::spawn(backend.next_request());
    assert!(
        next.poll().is_pending(),
        "a shed request must not reach the backend"
    );
}

#[tokio::test]
async fn fail_fast_sheds_over_the_limit_and_releases_at_body_end() {
    let (mut svc, mut backend) = setup(ConcurrencyConfig::fixed(2));
    let first = exchange(&mut svc, &mut backend).await.unwrap();
    let second = exchange(&mut svc, &mut backend).await.unwrap();
    assert_eq!(
        svc.get_ref().handle().in_flight(),
        2,
        "bodies still open hold permits"
    );
    assert_shed(&mut svc, &mut backend).await;

    // Reading the body to its end releases the permit.
    let bytes = first.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], b"body");
    assert_eq!(svc.get_ref().handle().in_flight(), 1);
    let third = exchange(&mut svc, &mut backend).await.unwrap();
    assert_shed(&mut svc, &mut backend).await;
    drop((second, third));
    assert_eq!(svc.get_ref().handle().in_flight(), 0);
}

#[tokio::test]
async fn dropped_future_dropped_body_and_errors_release_the_permit() {
    let (mut svc, mut backend) = setup(ConcurrencyConfig::fixed(1));
    let handle = svc.get_ref().handle().clone();

    // The response future is dropped before the response.
    assert_ready_ok!(svc.poll_ready());
    drop(svc.call(Request::new(String::new())));
    assert_eq!(handle.in_flight(), 0);
    let _ = backend.next_request().await.unwrap(); // the abandoned request

    // The body is dropped half-read.
    let res = exchange(&mut svc, &mut backend).await.unwrap();
    drop(res);
    assert_eq!(handle.in_flight(), 0);

    // The inner service fails.
    assert_ready_ok!(svc.poll_ready());
    let future = svc.call(Request::new(String::new()));
    let (_, reply) = backend.next_request().await.unwrap();
    reply.send_error(Timeout::new());
    assert!(future.await.unwrap_err().is::<Timeout>());
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test]
async fn a_reservation_counts_and_is_released_with_the_service() {
    let (mut svc, mut backend) = setup(ConcurrencyConfig::fixed(1));
    let mut clone = Spawn::new(svc.get_ref().clone());
    assert_ready_ok!(clone.poll_ready());
    assert_eq!(
        svc.get_ref().handle().in_flight(),
        1,
        "reserved in poll_ready"
    );
    assert_shed(&mut svc, &mut backend).await;
    drop(clone);
    exchange(&mut svc, &mut backend).await.unwrap();
}

#[tokio::test]
async fn wait_mode_is_pending_until_a_permit_is_released() {
    let (mut svc, mut backend) = setup(ConcurrencyConfig::fixed(1).over_limit(OverLimit::Wait));
    let res = exchange(&mut svc, &mut backend).await.unwrap();
    let mut other = Spawn::new(svc.get_ref().clone());
    assert_pending!(other.poll_ready());
    assert!(!other.is_woken());
    drop(res);
    assert!(other.is_woken(), "releasing the permit wakes the waiter");
    assert_ready_ok!(other.poll_ready());
}

#[tokio::test]
async fn invalid_config_names_the_key() {
    let err = ConcurrencyLimitLayer::new(ConcurrencyConfig::fixed(0)).unwrap_err();
    assert_eq!(err.key(), "algorithm.fixed");
    let err = ConcurrencyLimitLayer::new(ConcurrencyConfig::adaptive(
        VegasConfig::new().limits(5, 10, 100),
    ))
    .unwrap_err();
    assert_eq!(err.key(), "vegas.initial_limit");
}

/// Latency of a service that serves `knee` requests at once in `base`, and queues the rest:
/// beyond the knee, latency grows in proportion to the requests in flight.
fn latency(in_flight: u32, knee: u32, base: Duration) -> Duration {
    base.mul_f64(f64::from(in_flight.max(knee)) / f64::from(knee))
}

/// Drives the algorithm with a saturated client (always more demand than the limit): each
/// sample sees the limit's worth of requests in flight; the clock moves by one completion's share.
fn saturate(vegas: &mut Vegas, now: &mut Instant, knee: u32, samples: usize) -> Vec<u32> {
    let base = Duration::from_millis(10);
    (0..samples)
        .map(|_| {
            let in_flight = vegas.limit();
            let rtt = latency(in_flight, knee, base);
            *now += rtt / in_flight;
            vegas.sample(rtt, in_flight, *now)
        })
        .collect()
}

#[test]
fn vegas_remeasures_the_minimum_at_low_concurrency() {
    let mut vegas = Vegas::new(VegasConfig::new());
    let mut now = Instant::now();
    saturate(&mut vegas, &mut now, 50, 2_000);
    let before = vegas.limit();
    assert_eq!(vegas.rtt_min(), Some(Duration::from_millis(10)));
    // The service became slower for good (20 ms unloaded); a probe is due after 60 s.
    now += Duration::from_secs(60);
    vegas.sample(Duration::from_millis(20), before, now);
    assert!(vegas.is_probing());
    assert_eq!(vegas.limit(), 3, "probing holds the limit at min_limit");
    // Samples that started before the probe (many in flight) are not a baseline.
    vegas.sample(Duration::from_millis(25), before, now);
    for _ in 0..50 {
        vegas.sample(Duration::from_millis(20), 3, now);
    }
    assert!(!vegas.is_probing());
    assert_eq!(vegas.rtt_min(), Some(Duration::from_millis(20)));
    assert_eq!(
        vegas.limit(),
        before,
        "the limit is restored after the probe"
    );
}

#[test]
fn vegas_converges_near_the_knee_and_backs_off_when_capacity_drops() {
    let mut vegas = Vegas::new(VegasConfig::new());
    let mut now = Instant::now();
    assert!(
        vegas.is_probing(),
        "starts by measuring the minimum latency"
    );
    assert_eq!(vegas.limit(), 3);
    let history = saturate(&mut vegas, &mut now, 50, 5_000);
    assert!(!vegas.is_probing());
    let tail = &history[4_000..];
    let (low, high) = (tail.iter().min().unwrap(), tail.iter().max().unwrap());
    assert!(
        (50..=65).contains(low) && (50..=65).contains(high),
        "settles just past the knee of 50: {low}..={high}"
    );
    assert_eq!(vegas.rtt_min(), Some(Duration::from_millis(10)));

    // The service loses half its capacity: latency rises past 25 in flight.
    let history = saturate(&mut vegas, &mut now, 25, 5_000);
    let tail = &history[4_000..];
    let (low, high) = (tail.iter().min().unwrap(), tail.iter().max().unwrap());
    assert!(
        (25..=38).contains(low) && (25..=38).contains(high),
        "backs off toward the new knee of 25: {low}..={high}"
    );
}

#[test]
fn vegas_does_not_grow_when_the_limit_is_not_used() {
    let mut vegas = Vegas::new(VegasConfig::new());
    let now = Instant::now();
    for _ in 0..1_000 {
        vegas.sample(Duration::from_millis(10), 2, now);
    }
    assert_eq!(vegas.limit(), 20, "2 in flight never tests a limit of 20");
}

#[test]
fn vegas_stays_within_its_bounds() {
    let mut vegas = Vegas::new(VegasConfig::new().limits(20, 10, 30));
    let mut now = Instant::now();
    saturate(&mut vegas, &mut now, 1_000, 2_000);
    assert_eq!(vegas.limit(), 30);
    // Very high latency against the known minimum: shrinks to the floor.
    for _ in 0..2_000 {
        now += Duration::from_secs(1);
        vegas.sample(Duration::from_secs(1), 30, now);
    }
    assert_eq!(vegas.limit(), 10);
}

/// The adaptive limit in a service, on a paused clock: 80 closed-loop clients against a service
/// whose latency rises past 40 requests in flight. Shed requests retry after 5 ms.
#[tokio::test(start_paused = true)]
async fn adaptive_limit_in_a_service_settles_near_the_knee() {
    const KNEE: u32 = 40;
    let in_flight = Arc::new(AtomicU32::new(0));
    let counter = in_flight.clone();
    let backend = service_fn(move |_req: Request<String>| {
        let counter = counter.clone();
        async move {
            let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(latency(now, KNEE, Duration::from_millis(10))).await;
            counter.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        }
    });
    let layer =
        ConcurrencyLimitLayer::new(ConcurrencyConfig::adaptive(VegasConfig::new())).unwrap();
    let svc = layer.layer(backend);
    let handle = svc.handle().clone();

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut clients = Vec::new();
    for _ in 0..80 {
        let mut svc = svc.clone();
        clients.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match svc
                    .ready()
                    .await
                    .unwrap()
                    .call(Request::new(String::new()))
                    .await
                {
                    Ok(res) => drop(res.into_body().collect().await.unwrap()),
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let limit = handle.limit();
    println!("adaptive limit after 10 s: {limit}");
    assert!(
        (KNEE..=KNEE * 3 / 2).contains(&limit),
        "limit {limit} should settle just past the knee of {KNEE}"
    );
    assert_eq!(in_flight.load(Ordering::SeqCst), 0);
}
