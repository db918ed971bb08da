//! The request timeout layer and its settings.

use std::marker::PhantomData;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Meter};
use tower_layer::Layer;

use super::{Direct, InExtensions, RequestTimeout};

/// Settings of a [`RequestTimeoutLayer`].
///
/// | Setting              | Default | Why                                                            |
/// |----------------------|---------|----------------------------------------------------------------|
/// | `timeout`            | 15 s    | Envoy's route timeout: long enough for normal calls, bounded    |
/// | `read_grpc_timeout`  | on      | honour the caller's deadline, capped by `timeout`               |
/// | `write_grpc_timeout` | on      | tell the next hop how much time is left (gRPC requests only)    |
/// | `meter`              | `global::meter("mesh-retry")` | the application picks the provider  |
///
/// `grpc-timeout` is read and written on `POST` requests only (every gRPC call is one), and
/// written only on those whose `content-type` is gRPC's. The caller's `grpc-timeout` can only
/// shorten the deadline: `timeout` is its cap. With
/// `timeout` set to `None` the layer sets no deadline of its own and the caller's `grpc-timeout`
/// is used uncapped.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TimeoutConfig {
    timeout: Option<Duration>,
    read_grpc_timeout: bool,
    write_grpc_timeout: bool,
    meter: Option<Meter>,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            timeout: Some(Duration::from_secs(15)),
            read_grpc_timeout: true,
            write_grpc_timeout: true,
            meter: None,
        }
    }
}

impl TimeoutConfig {
    /// The request timeout, also the cap on an incoming `grpc-timeout` (`None`: no own timeout).
    #[must_use]
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether to honour an incoming `grpc-timeout` header (on a `POST` request).
    #[must_use]
    pub fn read_grpc_timeout(mut self, read: bool) -> Self {
        self.read_grpc_timeout = read;
        self
    }

    /// Whether to write `grpc-timeout` with the time left on gRPC requests.
    #[must_use]
    pub fn write_grpc_timeout(mut self, write: bool) -> Self {
        self.write_grpc_timeout = write;
        self
    }

    /// Records metrics through `meter` instead of `opentelemetry::global::meter("mesh-retry")`.
    #[must_use]
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }
}

/// Gives each request a deadline and fails it with [`mesh_core::error::Timeout`] when the deadline
/// passes; see the [module docs](super).
///
/// Metrics (OpenTelemetry counters): `mesh.timeout.expired` (requests failed by this layer),
/// `mesh.timeout.grpc_timeout_malformed` (incoming `grpc-timeout` values that could not be parsed
/// and were ignored and removed); see the [crate's metric table](crate#metrics).
///
/// The deadline reaches the layers below in the request's extensions, as a
/// [`Deadline`](super::Deadline); [`hand_deadline_directly`](Self::hand_deadline_directly) hands
/// it to a [`Retry`](crate::retry::Retry) right below instead.
#[derive(Clone, Debug)]
pub struct RequestTimeoutLayer<H = InExtensions> {
    config: TimeoutConfig,
    handoff: PhantomData<H>,
}

impl RequestTimeoutLayer {
    /// A layer with these settings.
    pub fn new(config: TimeoutConfig) -> Self {
        Self {
            config,
            handoff: PhantomData,
        }
    }

    /// Hands each request's deadline to the service right below through [`TakesDeadline`](super::TakesDeadline)
    /// (mesh-retry's [`Retry`](crate::retry::Retry) takes it) instead of putting it in the
    /// request's extensions; see [`Direct`].
    ///
    /// For a stack where nothing below the retry layer reads the deadline: a request that has no
    /// extensions then costs no extension map (three allocations). mesh's client stack is built
    /// this way.
    pub fn hand_deadline_directly(self) -> RequestTimeoutLayer<Direct> {
        RequestTimeoutLayer {
            config: self.config,
            handoff: PhantomData,
        }
    }
}

impl Default for RequestTimeoutLayer {
    fn default() -> Self {
        Self::new(TimeoutConfig::default())
    }
}

/// What a [`RequestTimeout`] service keeps from the config.
#[derive(Clone, Debug)]
pub(super) struct TimeoutSettings {
    pub(super) timeout: Option<Duration>,
    pub(super) read_grpc_timeout: bool,
    pub(super) write_grpc_timeout: bool,
    pub(super) expired: Counter<u64>,
    pub(super) malformed: Counter<u64>,
}

impl<S, H> Layer<S> for RequestTimeoutLayer<H> {
    type Service = RequestTimeout<S, H>;

    fn layer(&self, inner: S) -> RequestTimeout<S, H> {
        let meter = self
            .config
            .meter
            .clone()
            .unwrap_or_else(|| opentelemetry::global::meter("mesh-retry"));
        let settings = TimeoutSettings {
            timeout: self.config.timeout,
            read_grpc_timeout: self.config.read_grpc_timeout,
            write_grpc_timeout: self.config.write_grpc_timeout,
            expired: meter
                .u64_counter("mesh.timeout.expired")
                .with_unit("{request}")
                .with_description("Requests failed because their deadline passed")
                .build(),
            malformed: meter
                .u64_counter("mesh.timeout.grpc_timeout_malformed")
                .with_unit("{request}")
                .with_description("Incoming grpc-timeout headers ignored because malformed")
                .build(),
        };
        // A 0 point at once, so the series exists before its first increment (see the crate's
        // metric docs).
        settings.expired.add(0, &[]);
        settings.malformed.add(0, &[]);
        RequestTimeout::from_settings(inner, std::sync::Arc::new(settings))
    }
}
