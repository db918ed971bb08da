//! The open-loop load driver: [`Driver`], and what it records per request ([`RequestRecord`]).

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Empty};
use mesh_core::BoxError;
use mesh_core::classify::ErrorKind;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout_at};
use tower_service::Service;

use crate::SimError;

/// The most requests one run may schedule (rate × duration); past it, [`Driver::new`] refuses.
pub const MAX_ARRIVALS: u64 = 50_000_000;

/// The URI of every request the driver sends.
pub const REQUEST_URI: &str = "http://sim.invalid/";

/// How one request ended, from the caller's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestOutcome {
    /// A response with this status, whose body was read to its end.
    Response(u16),
    /// The service failed (in `poll_ready`, in `call`'s future, or while the body was read),
    /// with an error of this kind.
    Error(ErrorKind),
    /// No answer within the driver's [request timeout](Driver::request_timeout), counted from the
    /// scheduled arrival.
    TimedOut,
}

impl RequestOutcome {
    /// A success is a `2xx` response read to its end; anything else is a failure.
    pub fn is_success(&self) -> bool {
        matches!(self, RequestOutcome::Response(status) if (200..300).contains(status))
    }
}

/// One request as the driver saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRecord {
    /// When it was due, from the scenario start.
    pub scheduled: Duration,
    /// From `scheduled` to the end of its response body (or its failure): any wait for the
    /// service's readiness is included.
    pub latency: Duration,
    /// How it ended.
    pub outcome: RequestOutcome,
}

impl RequestRecord {
    /// A record built by hand (for computing a [`Report`](crate::Report) from other sources).
    pub fn new(scheduled: Duration, latency: Duration, outcome: RequestOutcome) -> Self {
        Self {
            scheduled,
            latency,
            outcome,
        }
    }
}

/// Sends requests at a fixed rate, open loop, and records each one's latency and outcome.
///
/// Request `i` (from 0) is due at `i ÷ rate` seconds after the start, for every `i` with a due
/// time before `duration`. The driver waits for the due time, then for the service's readiness
/// (`poll_ready`), then calls it and spawns a task that awaits the response and reads its body to
/// the end (a balancer that measures load until the body ends needs that). It does **not** wait
/// for responses before sending the next request: arrivals never slow down because the system
/// does (no *coordinated omission*). Latency is counted from the *due* time, so a request that
/// waited for readiness, or whose send was delayed by an earlier one's wait, is charged for it.
///
/// Every request is `GET` [`REQUEST_URI`] with an empty body (`Request<Empty<Bytes>>`); map it
/// with `tower::ServiceExt::map_request` to send something else. `GET` is idempotent, so retry
/// layers may retry it.
///
/// A request that is not answered within [`request_timeout`](Self::request_timeout) of its due
/// time (default 10 s) is recorded as [`RequestOutcome::TimedOut`] and dropped (cancelled), so a
/// stack that waits forever still ends the run. A `poll_ready` error fails that request only; the
/// next one polls readiness again.
///
/// Spawned tasks need a tokio runtime; on a paused clock (see [`Scenario`](crate::Scenario)) a
/// run takes no wall time beyond the work itself. Hence the `Send + 'static` bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Driver {
    rate: f64,
    duration: Duration,
    arrivals: u64,
    request_timeout: Duration,
}

impl Driver {
    /// `rate` requests per second for `duration`.
    ///
    /// # Errors
    ///
    /// A rate that is not a positive finite number, a zero duration, or more than
    /// [`MAX_ARRIVALS`] requests in all.
    pub fn new(rate: f64, duration: Duration) -> Result<Self, SimError> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(SimError::config("rate", "must be a positive number"));
        }
        if duration.is_zero() {
            return Err(SimError::config("duration", "must be longer than zero"));
        }
        let estimate = (duration.as_secs_f64() * rate).ceil();
        if estimate > MAX_ARRIVALS as f64 {
            return Err(SimError::config(
                "rate",
                "rate × duration exceeds the 50 million requests a run may send",
            ));
        }
        let mut driver = Self {
            rate,
            duration,
            arrivals: estimate as u64,
            request_timeout: Duration::from_secs(10),
        };
        // The estimate can be off by one either way through rounding: settle it exactly.
        while driver.arrivals > 0 && driver.arrival(driver.arrivals - 1) >= duration {
            driver.arrivals -= 1;
        }
        while driver.arrival(driver.arrivals) < duration {
            driver.arrivals += 1;
        }
        Ok(driver)
    }

    /// How long a request may take, from its due time, before it counts as timed out. Default
    /// 10 s. A zero timeout is raised to 1 ns.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(Duration::from_nanos(1));
        self
    }

    /// The number of requests a run sends.
    pub fn arrivals(&self) -> u64 {
        self.arrivals
    }

    /// When request `i` is due, from the start: `i ÷ rate` seconds, rounded to the nanosecond.
    pub fn arrival(&self, i: u64) -> Duration {
        let nanos = (i as f64 * 1e9 / self.rate).round();
        Duration::from_nanos(nanos.min(u64::MAX as f64) as u64)
    }

    /// The scheduled duration.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Drives `service` from `start` (usually [`Fleet::epoch`](crate::Fleet::epoch)); returns one
    /// record per request, in arrival order, once every response has ended.
    pub async fn run<S, RB>(&self, mut service: S, start: Instant) -> Vec<RequestRecord>
    where
        S: Service<Request<Empty<Bytes>>, Response = Response<RB>>,
        S::Error: Into<BoxError> + 'static,
        S::Future: Send + 'static,
        RB: Body + Send + 'static,
        RB::Data: Send,
        RB::Error: Into<BoxError>,
    {
        enum Pending {
            Done(RequestRecord),
            Running(JoinHandle<RequestRecord>),
        }
        let uri = Uri::from_static(REQUEST_URI);
        let mut pending = Vec::with_capacity(usize::try_from(self.arrivals).unwrap_or(0));
        for i in 0..self.arrivals {
            let due = start + self.arrival(i);
            let deadline = due + self.request_timeout;
            sleep_until(due).await;
            // Most of the time the service is ready at once: only arm a timer when it is not.
            let ready = match poll_fn(|cx| Poll::Ready(service.poll_ready(cx))).await {
                Poll::Ready(ready) => Ok(ready),
                Poll::Pending => timeout_at(deadline, poll_fn(|cx| service.poll_ready(cx))).await,
            };
            let failed = match ready {
                Ok(Ok(())) => {
                    let future = service.call(request(&uri));
                    pending.push(Pending::Running(tokio::spawn(complete(
                        future, start, due, deadline,
                    ))));
                    continue;
                }
                Ok(Err(e)) => RequestOutcome::Error(ErrorKind::of_dyn(&*e.into())),
                Err(_) => RequestOutcome::TimedOut,
            };
            pending.push(Pending::Done(record(start, due, failed)));
        }
        let mut records = Vec::with_capacity(pending.len());
        for p in pending {
            records.push(match p {
                Pending::Done(r) => r,
                Pending::Running(task) => match task.await {
                    Ok(r) => r,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // Only a runtime shutting down cancels the task, and the run is over then.
                    Err(_) => RequestRecord::new(
                        Duration::ZERO,
                        Duration::ZERO,
                        RequestOutcome::Error(ErrorKind::Transport),
                    ),
                },
            });
        }
        records
    }
}

fn request(uri: &Uri) -> Request<Empty<Bytes>> {
    let mut request = Request::new(Empty::new());
    // Cloning a parsed static URI copies no bytes; parsing it for every request would.
    *request.uri_mut() = uri.clone();
    request
}

fn record(start: Instant, due: Instant, outcome: RequestOutcome) -> RequestRecord {
    RequestRecord::new(
        due.saturating_duration_since(start),
        Instant::now().saturating_duration_since(due),
        outcome,
    )
}

/// Awaits the response and reads its body to the end, within the deadline.
async fn complete<F, RB, E>(
    future: F,
    start: Instant,
    due: Instant,
    deadline: Instant,
) -> RequestRecord
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
    RB: Body,
    RB::Error: Into<BoxError>,
{
    let exchange = async {
        let response = future.await.map_err(Into::into)?;
        let status = response.status().as_u16();
        let mut body = pin!(response.into_body());
        while let Some(frame) = body.frame().await {
            frame.map_err(Into::into)?;
        }
        Ok::<_, BoxError>(status)
    };
    let outcome = match timeout_at(deadline, exchange).await {
        Ok(Ok(status)) => RequestOutcome::Response(status),
        Ok(Err(e)) => RequestOutcome::Error(ErrorKind::of_dyn(&*e)),
        Err(_) => RequestOutcome::TimedOut,
    };
    record(start, due, outcome)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::Full;

    use super::*;

    #[test]
    fn the_schedule_is_exact_and_ends_before_the_duration() {
        let d = Driver::new(1000.0, Duration::from_secs(60)).unwrap();
        assert_eq!(d.arrivals(), 60_000);
        assert_eq!(d.arrival(1), Duration::from_millis(1));
        assert_eq!(d.arrival(59_999), Duration::from_millis(59_999));
        let d = Driver::new(3.0, Duration::from_secs(1)).unwrap();
        assert_eq!(d.arrivals(), 3);
        assert_eq!(d.arrival(1), Duration::from_nanos(333_333_333));
        // 2.5 requests per second for 1 s: due at 0 and 0.4 s.
        assert_eq!(
            Driver::new(2.5, Duration::from_secs(1)).unwrap().arrivals(),
            3
        );
        assert_eq!(
            Driver::new(2.5, Duration::from_millis(800))
                .unwrap()
                .arrivals(),
            2
        );
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Driver::new(rate, Duration::from_secs(1)).is_err(), "{rate}");
        }
        assert!(Driver::new(1.0, Duration::ZERO).is_err());
        assert!(Driver::new(1e9, Duration::from_secs(3600)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_latency_is_measured_exactly_and_arrivals_are_on_time() {
        let service = tower::service_fn(|_req: Request<Empty<Bytes>>| async {
            tokio::time::sleep(Duration::from_millis(7)).await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"x"))))
        });
        let driver = Driver::new(100.0, Duration::from_secs(2)).unwrap();
        let start = Instant::now();
        let records = driver.run(service, start).await;
        assert_eq!(records.len(), 200);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.scheduled, Duration::from_millis(10 * i as u64));
            assert_eq!(r.latency, Duration::from_millis(7));
            assert_eq!(r.outcome, RequestOutcome::Response(200));
        }
        // The run ends when the last response does.
        assert_eq!(start.elapsed(), Duration::from_millis(1990 + 7));
    }

    /// A service that is ready only once every 50 ms: the waits are charged to the requests.
    #[tokio::test(start_paused = true)]
    async fn waiting_for_readiness_counts_as_latency() {
        struct Gate(Option<std::pin::Pin<Box<tokio::time::Sleep>>>);
        impl Service<Request<Empty<Bytes>>> for Gate {
            type Response = Response<Empty<Bytes>>;
            type Error = Infallible;
            type Future = std::future::Ready<Result<Self::Response, Infallible>>;
            fn poll_ready(
                &mut self,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Infallible>> {
                let sleep = self
                    .0
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(50))));
                sleep.as_mut().poll(cx).map(Ok)
            }
            fn call(&mut self, _: Request<Empty<Bytes>>) -> Self::Future {
                self.0 = None;
                std::future::ready(Ok(Response::new(Empty::new())))
            }
        }
        let driver = Driver::new(100.0, Duration::from_millis(100)).unwrap();
        let records = driver.run(Gate(None), Instant::now()).await;
        let latencies: Vec<u64> = records
            .iter()
            .map(|r| r.latency.as_millis() as u64)
            .collect();
        // Request 0 due at 0, sent at 50; request 1 due at 10, sent at 100; and so on.
        assert_eq!(&latencies[..4], &[50, 90, 130, 170]);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_and_hangs_are_failures() {
        let service = tower::service_fn(|_req: Request<Empty<Bytes>>| async {
            std::future::pending::<()>().await;
            Ok::<Response<Empty<Bytes>>, Infallible>(Response::new(Empty::new()))
        });
        let driver = Driver::new(10.0, Duration::from_secs(1))
            .unwrap()
            .request_timeout(Duration::from_millis(250));
        let records = driver.run(service, Instant::now()).await;
        assert!(
            records.iter().all(|r| r.outcome == RequestOutcome::TimedOut
                && r.latency == Duration::from_millis(250))
        );

        let failing = tower::service_fn(|_req: Request<Empty<Bytes>>| async {
            Err::<Response<Empty<Bytes>>, BoxError>(mesh_core::error::Timeout::new().into())
        });
        let records = driver.run(failing, Instant::now()).await;
        assert!(
            records
                .iter()
                .all(|r| r.outcome == RequestOutcome::Error(ErrorKind::Timeout))
        );
        assert!(!RequestOutcome::Response(503).is_success());
        assert!(RequestOutcome::Response(204).is_success());
    }
}
