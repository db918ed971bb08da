//! A whole run: [`Scenario`].

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Empty;
use mesh_core::BoxError;
use tower_service::Service;

use crate::SimError;
use crate::driver::Driver;
use crate::endpoint::{EndpointSpec, Fleet};
use crate::report::{EndpointLog, Report};

/// Endpoints, a request rate, a duration and a seed: everything a run needs except the stack
/// under test, which [`run`](Self::run) builds over the scenario's [`Fleet`].
///
/// Defaults: seed 0, [request timeout](Driver::request_timeout) 10 s, quiet gap (for the
/// [time to ejection](Report)) 1 s.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    endpoints: Vec<EndpointSpec>,
    rate: f64,
    duration: Duration,
    seed: u64,
    request_timeout: Duration,
    quiet_gap: Duration,
}

impl Scenario {
    /// `rate` requests per second for `duration` of virtual time, no endpoints yet.
    pub fn new(rate: f64, duration: Duration) -> Self {
        Self {
            endpoints: Vec::new(),
            rate,
            duration,
            seed: 0,
            request_timeout: Duration::from_secs(10),
            quiet_gap: Duration::from_secs(1),
        }
    }

    /// Adds an endpoint.
    #[must_use]
    pub fn endpoint(mut self, spec: EndpointSpec) -> Self {
        self.endpoints.push(spec);
        self
    }

    /// Adds endpoints.
    #[must_use]
    pub fn endpoints(mut self, specs: impl IntoIterator<Item = EndpointSpec>) -> Self {
        self.endpoints.extend(specs);
        self
    }

    /// Seeds the endpoints' latency draws ([`Fleet::seed`] passes it on to the stack builder).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// See [`Driver::request_timeout`].
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The quiet gap that defines the [time to ejection](Report).
    #[must_use]
    pub fn quiet_gap(mut self, gap: Duration) -> Self {
        self.quiet_gap = gap;
        self
    }

    /// The same scenario with every fault removed: the healthy baseline to compare with.
    #[must_use]
    pub fn healthy(&self) -> Self {
        let mut healthy = self.clone();
        healthy.endpoints = healthy
            .endpoints
            .into_iter()
            .map(EndpointSpec::healthy)
            .collect();
        healthy
    }

    /// The endpoints.
    pub fn endpoint_specs(&self) -> &[EndpointSpec] {
        &self.endpoints
    }

    /// The seed.
    pub fn seed_value(&self) -> u64 {
        self.seed
    }

    /// Checks the rate, duration, endpoints and faults without running anything.
    pub fn validate(&self) -> Result<(), SimError> {
        Driver::new(self.rate, self.duration)?;
        if self.endpoints.is_empty() {
            return Err(SimError::config("endpoints", "needs at least one endpoint"));
        }
        self.endpoints.iter().try_for_each(EndpointSpec::validate)
    }

    /// Runs the scenario on a runtime of its own: a current-thread tokio runtime with the clock
    /// paused, so 60 s of virtual time take only the CPU time of the work, and the same seed
    /// gives the same report.
    ///
    /// `build` receives the [`Fleet`] and returns the stack under test (a balancer over the
    /// fleet's endpoints, with whatever layers on top). It runs inside the runtime, at virtual
    /// time zero.
    ///
    /// # Errors
    ///
    /// Invalid settings, a failing `build`, or a runtime that cannot start.
    pub fn run<F, S, E, RB>(&self, build: F) -> Result<Report, SimError>
    where
        F: FnOnce(&Fleet) -> Result<S, E>,
        E: Into<BoxError>,
        S: Service<Request<Empty<Bytes>>, Response = Response<RB>>,
        S::Error: Into<BoxError> + 'static,
        S::Future: Send + 'static,
        RB: Body + Send + 'static,
        RB::Data: Send,
        RB::Error: Into<BoxError>,
    {
        self.validate()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .map_err(SimError::Runtime)?;
        runtime.block_on(self.run_here(build))
    }

    /// Runs the scenario on the current runtime, which must be a current-thread runtime with a
    /// paused clock (`#[tokio::test(start_paused = true)]`, say): on a running clock the run
    /// takes its full duration in wall time, and is no longer deterministic.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub async fn run_here<F, S, E, RB>(&self, build: F) -> Result<Report, SimError>
    where
        F: FnOnce(&Fleet) -> Result<S, E>,
        E: Into<BoxError>,
        S: Service<Request<Empty<Bytes>>, Response = Response<RB>>,
        S::Error: Into<BoxError> + 'static,
        S::Future: Send + 'static,
        RB: Body + Send + 'static,
        RB::Data: Send,
        RB::Error: Into<BoxError>,
    {
        self.validate()?;
        let driver = Driver::new(self.rate, self.duration)?.request_timeout(self.request_timeout);
        let fleet = Fleet::new(self.endpoints.clone(), self.seed)?;
        let service = build(&fleet).map_err(|e| SimError::Build(e.into()))?;
        let records = driver.run(service, fleet.epoch()).await;
        let logs = fleet
            .counted()
            .map(|e| EndpointLog {
                endpoint: e.endpoint().clone(),
                faults: e.spec().faults().to_vec(),
                attempts: e.attempts(),
            })
            .collect();
        Ok(Report::new(&records, logs, self.duration, self.quiet_gap))
    }
}
