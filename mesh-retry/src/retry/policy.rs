//! The retry policy: which failures are retried, how often, and how long to wait.

use std::time::{Duration, SystemTime};

use http::header::HeaderName;
use http::{Method, Request, StatusCode};
use mesh_core::ConfigError;
use mesh_core::classify::{ErrorKind, FailureClass, GrpcCode, GrpcCodeSet, Pushback};

use super::{ExponentialBackoff, Retryable, is_idempotent};
use crate::body::DEFAULT_REPLAY_CAP;

/// Settings of the [retry layer](super::RetryLayer): what is retried and how.
///
/// | Setting            | Default                  | Why                                                |
/// |--------------------|--------------------------|----------------------------------------------------|
/// | `max_attempts`     | 3 (first try + 2 retries)| Envoy/Linkerd-like; more rarely helps and amplifies |
/// | `backoff`          | 25 ms base, 250 ms max, full jitter | Envoy's figures                          |
/// | `retry_statuses`   | 500, 502, 503, 504       | errors another endpoint (or a second try) may not repeat |
/// | `grpc_codes`       | `UNAVAILABLE`            | the one code gRPC documents as safe to retry        |
/// | `max_server_delay` | 1 s                      | a longer `Retry-After` / pushback is passed back to the caller |
/// | `per_try_timeout`  | none                     | the overall deadline usually suffices               |
/// | idempotent only    | yes                      | RFC 9110 §9.2.2; opt in per request with [`Retryable`] |
/// | `retryable_methods`| none                     | further methods the caller knows to be safe to repeat (`POST` with idempotency keys) |
/// | unprocessed gRPC, any method | yes            | gRPC calls are all `POST`; `UNAVAILABLE` says the call was not processed (Envoy's `retry_on: unavailable`) |
/// | `retryable_header` | none                     | a header name the caller can set to opt in          |
/// | `replay_cap`       | 64 KiB                   | Linkerd and Pingora's replay buffer                 |
/// | `seed`             | random                   | set it for reproducible jitter                      |
/// | avoid tried endpoints | yes                   | a retry to the endpoint that just failed rarely helps |
///
/// What is retried, in order:
///
/// 1. never when the server forbade it (`grpc-retry-pushback-ms` negative or malformed);
/// 2. always when the request was never sent: a connect error ([`ErrorKind::Connect`]), an
///    exchange that failed before any byte left ([`ErrorKind::Upstream`] with `request_sent:
///    false`), or an endpoint whose HTTP/1.1 connections all stayed busy for the client's pool wait
///    ([`ErrorKind::PoolExhausted`]; the retry goes to another endpoint when tried endpoints are
///    avoided) — whatever the method;
/// 3. whatever the method, a gRPC answer that says the call was not processed (unless
///    [turned off](Self::retry_unprocessed_grpc)): `UNAVAILABLE` when it is in `grpc_codes`,
///    and `RESOURCE_EXHAUSTED` that carries a pushback delay (the server asked for the call again
///    after that delay, as a 429 with `Retry-After` does), each with its pushback waited out if at
///    most `max_server_delay`;
/// 4. otherwise only idempotent, [marked](Retryable) or `retryable_methods` requests, and then: a per-try or inner
///    timeout, a transport error, a failure status in `retry_statuses`, a gRPC failure whose code
///    is in `grpc_codes`, an overloaded answer (429, or 503 with `Retry-After`) whose delay is at
///    most `max_server_delay` — waited out before the retry; an overloaded answer without a delay
///    only when its status is in `retry_statuses`.
///
/// Rule 3 is what gRPC itself and Envoy's `retry_on: unavailable` do: gRPC calls are all `POST`, so
/// a method check would never retry one, and gRPC defines `UNAVAILABLE` as the status of a call
/// the server did not start (a server that answers it after doing the work breaks that contract;
/// turn rule 3 off for such servers). It is still bounded like every retry: by `max_attempts`,
/// the budget, the deadline and the replay buffer (a request body larger than `replay_cap` is
/// never sent twice). `RESOURCE_EXHAUSTED` must be a failure for the classifier to reach the
/// policy: [`RetryLayer`](super::RetryLayer)'s default classifier counts it (see
/// [`RetryLayer::new`](super::RetryLayer::new)).
///
/// Local refusals (circuit open, no endpoints, rate limited, overloaded, unauthorized, budget
/// exhausted) are never retried: another attempt would be refused the same way.
///
/// Retries are decided on the response *head* only. A gRPC status that arrives in trailers means
/// the response body is already streaming to the caller, and the layer never holds a response back
/// to wait for its end: such responses are returned as they are. gRPC errors usually come as
/// trailers-only responses (status in the head), which are retried.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RetryPolicy {
    pub(super) max_attempts: u32,
    pub(super) backoff: ExponentialBackoff,
    pub(super) retry_statuses: Vec<StatusCode>,
    pub(super) grpc_codes: GrpcCodeSet,
    pub(super) max_server_delay: Duration,
    pub(super) per_try_timeout: Option<Duration>,
    pub(super) idempotent_only: bool,
    pub(super) retryable_methods: Vec<Method>,
    pub(super) retry_unprocessed_grpc: bool,
    pub(super) retryable_header: Option<HeaderName>,
    pub(super) replay_cap: usize,
    pub(super) seed: Option<u64>,
    pub(super) avoid_tried: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: ExponentialBackoff::default(),
            retry_statuses: vec![
                StatusCode::INTERNAL_SERVER_ERROR,
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::GATEWAY_TIMEOUT,
            ],
            grpc_codes: GrpcCodeSet::EMPTY.with(GrpcCode::UNAVAILABLE),
            max_server_delay: Duration::from_secs(1),
            per_try_timeout: None,
            idempotent_only: true,
            retryable_methods: Vec::new(),
            retry_unprocessed_grpc: true,
            retryable_header: None,
            replay_cap: DEFAULT_REPLAY_CAP,
            seed: None,
            avoid_tried: true,
        }
    }
}

impl RetryPolicy {
    /// Total attempts, the first one included: 1 (no retry) to 10, checked by
    /// [`validate`](Self::validate).
    #[must_use]
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// The delay between attempts.
    #[must_use]
    pub fn backoff(mut self, backoff: ExponentialBackoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The HTTP statuses that are retried (only statuses the classifier calls failures count).
    #[must_use]
    pub fn retry_statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.retry_statuses = statuses.into_iter().collect();
        self
    }

    /// The gRPC codes that are retried (only codes the classifier calls failures count: add them
    /// to its failure set too).
    #[must_use]
    pub fn grpc_codes(mut self, codes: GrpcCodeSet) -> Self {
        self.grpc_codes = codes;
        self
    }

    /// The longest `Retry-After` or gRPC pushback that is waited out; a longer one is not retried.
    #[must_use]
    pub fn max_server_delay(mut self, delay: Duration) -> Self {
        self.max_server_delay = delay;
        self
    }

    /// A timeout for each attempt; an attempt that exceeds it is cancelled and counts as a
    /// [`mesh_core::error::Timeout`] (retried for idempotent requests).
    #[must_use]
    pub fn per_try_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.per_try_timeout = timeout;
        self
    }

    /// Whether retries carry the [`AvoidTried`](mesh_core::attempts::AvoidTried) marker (default
    /// `true`), so that a balancer right below sends them to endpoints the request has not tried.
    /// The first attempt carries nothing either way, and the marker is zero-sized: it costs an
    /// allocation only on a retry whose request had no extensions (the map's own). Turn it off to
    /// let the balancer's own pick stand for retries.
    #[must_use]
    pub fn avoid_tried_endpoints(mut self, avoid: bool) -> Self {
        self.avoid_tried = avoid;
        self
    }

    /// Retries requests of any method that may have been sent (`false`), or only idempotent and
    /// marked ones (`true`, the default).
    #[must_use]
    pub fn idempotent_only(mut self, idempotent_only: bool) -> Self {
        self.idempotent_only = idempotent_only;
        self
    }

    /// Methods retried like the idempotent ones once they may have reached the server (say
    /// `POST` for an API whose POSTs carry an idempotency key). Empty by default. Only matters
    /// while [`idempotent_only`](Self::idempotent_only) is `true`.
    #[must_use]
    pub fn retryable_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.retryable_methods = methods.into_iter().collect();
        self
    }

    /// Whether a gRPC answer saying the call was not processed (`UNAVAILABLE` in `grpc_codes`,
    /// `RESOURCE_EXHAUSTED` with a pushback delay) is retried whatever the method (`true`, the
    /// default; rule 3 above). With `false`, gRPC calls (all `POST`) are retried only when marked
    /// or when their method is allowed.
    #[must_use]
    pub fn retry_unprocessed_grpc(mut self, retry: bool) -> Self {
        self.retry_unprocessed_grpc = retry;
        self
    }

    /// A request header whose presence marks the request as retryable, like [`Retryable`].
    #[must_use]
    pub fn retryable_header(mut self, name: HeaderName) -> Self {
        self.retryable_header = Some(name);
        self
    }

    /// The replay buffer cap, in bytes; a larger body is sent once and never retried.
    #[must_use]
    pub fn replay_cap(mut self, cap: usize) -> Self {
        self.replay_cap = cap;
        self
    }

    /// Seeds the jitter, for reproducible delays.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks every value; the error names the first bad key and why. [`RetryLayer::new`]
    /// calls it, so a policy is checked once, when its layer is built.
    ///
    /// [`RetryLayer::new`]: super::RetryLayer::new
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=10).contains(&self.max_attempts) {
            return Err(ConfigError::new("max_attempts", "must be between 1 and 10"));
        }
        Ok(())
    }

    /// The total number of attempts allowed.
    pub fn get_max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether [`idempotent_only`](Self::idempotent_only) is on.
    pub fn get_idempotent_only(&self) -> bool {
        self.idempotent_only
    }

    /// The methods retried besides the idempotent ones.
    pub fn get_retryable_methods(&self) -> &[Method] {
        &self.retryable_methods
    }

    /// Whether `req` may be retried after it may have reached the server (rule 4 above).
    pub fn is_retryable<B>(&self, req: &Request<B>) -> bool {
        !self.idempotent_only
            || is_idempotent(req.method())
            || self.retryable_methods.contains(req.method())
            || req.extensions().get::<Retryable>().is_some()
            || self
                .retryable_header
                .as_ref()
                .is_some_and(|name| req.headers().contains_key(name))
    }

    /// Why `class` should be retried (a metric label) and the server's requested delay, or `None`
    /// when it should not be. `retryable` is [`is_retryable`](Self::is_retryable) of the request.
    pub(super) fn reason(
        &self,
        class: &FailureClass,
        retryable: bool,
    ) -> Option<(&'static str, Option<Duration>)> {
        if class.retry_forbidden() {
            return None;
        }
        match class {
            FailureClass::Error(ErrorKind::Connect) => return Some(("connect", None)),
            FailureClass::Error(
                ErrorKind::Upstream {
                    request_sent: false,
                }
                | ErrorKind::PoolExhausted,
            ) => return Some(("not_sent", None)),
            FailureClass::Grpc { code, pushback } if self.retry_unprocessed_grpc => {
                if let Some(decision) = self.unprocessed_grpc(*code, *pushback) {
                    return decision;
                }
            }
            _ => {}
        }
        if !retryable {
            return None;
        }
        match class {
            FailureClass::Error(ErrorKind::Timeout) => Some(("timeout", None)),
            FailureClass::Error(ErrorKind::Upstream { .. } | ErrorKind::Transport) => {
                Some(("transport", None))
            }
            FailureClass::Status(status) => self
                .retry_statuses
                .contains(status)
                .then_some(("status", None)),
            FailureClass::Overloaded { status, .. } => match class.retry_after(SystemTime::now()) {
                Some(delay) => {
                    (delay <= self.max_server_delay).then_some(("overloaded", Some(delay)))
                }
                None => self
                    .retry_statuses
                    .contains(status)
                    .then_some(("overloaded", None)),
            },
            FailureClass::Grpc { code, .. } if self.grpc_codes.contains(*code) => {
                match class.retry_after(SystemTime::now()) {
                    Some(delay) if delay > self.max_server_delay => None,
                    delay => Some(("grpc_status", delay)),
                }
            }
            _ => None,
        }
    }

    /// Rule 3: `Some(decision)` for a gRPC code that says the call was not processed, `None` to
    /// go on with the method-dependent rules.
    fn unprocessed_grpc(
        &self,
        code: GrpcCode,
        pushback: Option<Pushback>,
    ) -> Option<Option<(&'static str, Option<Duration>)>> {
        let delay = pushback.and_then(Pushback::delay);
        let unprocessed = (code == GrpcCode::UNAVAILABLE && self.grpc_codes.contains(code))
            || (code == GrpcCode::RESOURCE_EXHAUSTED && delay.is_some());
        if !unprocessed {
            return None;
        }
        Some(match delay {
            Some(delay) if delay > self.max_server_delay => None,
            delay => Some(("grpc_status", delay)),
        })
    }
}
