//! Outlier ejection: an endpoint that keeps failing is taken out of rotation for a while.
//!
//! Each endpoint has an **outlier gate**, a readiness gate the balancer checks when it picks. It is
//! fed by mesh-core's classifier with the [`Completion`](mesh_core::classify::Completion) of every
//! request the endpoint served (when the response body ends), and it closes — the endpoint is
//! *ejected* — when either detector fires:
//!
//! - **consecutive failures**: [`OutlierConfig::consecutive_failures`] failures in a row (default 5,
//!   Envoy's and Finagle's);
//! - **failure rate**: at least [`failure_rate`](OutlierConfig::failure_rate) of at least
//!   [`failure_rate_min_requests`](OutlierConfig::failure_rate) requests within one
//!   [`failure_rate_window`](OutlierConfig::failure_rate) (default ≥ 50 % of ≥ 20 in 10 s;
//!   the window is tumbling: counts restart when a window has passed).
//!
//! What counts: a [`Failure`](mesh_core::classify::Outcome::Failure) counts as a failure, except
//! [overloaded](mesh_core::classify::FailureClass::is_overloaded) answers (429, 503 with
//! `Retry-After`): a server that sheds load is healthy and asking for less traffic, and ejecting it
//! would push its load onto its peers. Those, and cancelled requests (the caller gave up before the
//! outcome was known), count as nothing at all.
//!
//! # How long an ejection lasts
//!
//! An ejection lasts `base_ejection × multiplier`, capped at `max_ejection`, with a seeded jitter
//! of ± [`jitter`](OutlierConfig::jitter) (never above the cap) so that endpoints ejected together
//! do not all come back in the same instant. When the time is up the endpoint is not simply put
//! back: **exactly one probe request** is let through. If it succeeds the endpoint is back in; if it
//! fails, it is ejected again for longer; if the probe is cancelled, or its reservation dropped
//! unused, or the answer is "overloaded", the probe slot is given back and the next pick may probe.
//! Requests that were already in flight when an endpoint was ejected do not change its state.
//!
//! The **multiplier** counts failures that continue, not failures ever seen: it grows by one at
//! every ejection (a failed probe included) and shrinks by one for every
//! [`multiplier_decay`](OutlierConfig::multiplier_decay) (default 10 s) the endpoint spends in
//! rotation, never below zero. This is Envoy's rule (its multiplier drops by one per 10 s
//! detection interval without an ejection). Why not simply count ejections, and forget them only
//! after a long spell in rotation? Because of endpoints that *flap* — up for a while, down for a
//! few seconds, up again. Counting ejections, such an endpoint never stays in rotation long enough
//! to be forgiven, so its ejections grow to `max_ejection` (5 minutes out for a 10-second
//! hiccup), and one unlucky probe that lands in a down window doubles the next ejection for good.
//! With the decay, time served in rotation pays the multiplier back: an endpoint that keeps
//! coming back and serving for longer than `multiplier_decay` is ejected for `base_ejection`
//! each time, while one that fails again at once (or fails its probes) still backs off to
//! `max_ejection`. The mesh-sim test `flapping` measures a flapping endpoint's time out of
//! rotation under both rules.
//!
//! An endpoint that comes back from an ejection is cold: with
//! [slow start](crate::slow_start) configured, its weight ramps up again from the floor, as for a
//! new endpoint.
//!
//! Two bounds keep ejection from making things worse (Envoy's have changed meaning across
//! releases; ours are exact):
//!
//! - at most `floor(max_ejected_share × endpoints)` endpoints are ejected at once, and never all of
//!   them: an ejection that would break either bound does not happen (the failures stay counted, so
//!   the endpoint is ejected as soon as there is room);
//! - **panic mode**: when the share of healthy endpoints (ready and not ejected) falls below
//!   [`panic_threshold`](OutlierConfig::panic_threshold), the balancer ignores ejection and uses
//!   every ready endpoint: spreading load over sick endpoints beats crushing the few healthy ones.
//!
//! Panic mode does not stop ejections from ending. Ejected endpoints take traffic in panic, but
//! its outcomes do not decide anything while the ejection's time runs (as outside panic, an
//! ejection is served in full); once the time is up, the endpoint's next request *is* its probe,
//! picked and judged exactly as outside panic. So when every endpoint has healed, each ejected
//! one is back in rotation within one ejection, and panic mode ends as soon as enough are back.
//! (Were panic traffic never judged, an endpoint ejected while the balancer panics would never
//! get its probe, since in panic every endpoint is admitted, and panic would keep itself going.)
//!
//! ```
//! use std::time::Duration;
//!
//! use mesh_balance::{BalanceConfig, OutlierConfig};
//!
//! let outliers = OutlierConfig::default()
//!     .consecutive_failures(3)
//!     .base_ejection(Duration::from_secs(10))
//!     .max_ejected_share(0.3);
//! let config = BalanceConfig::default().outliers(outliers);
//! assert!(config.validate().is_ok());
//! ```

mod gate;

use std::time::Duration;

pub(crate) use gate::{Admission, EndpointHealth, OutlierShared};

/// Outlier ejection settings; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct OutlierConfig {
    /// Whether ejection is on at all. Default `true`.
    pub(crate) enabled: bool,
    /// Failures in a row that eject; 0 turns the detector off. Default 5 (Envoy, Finagle).
    pub(crate) consecutive_failures: u32,
    /// The failure share within one window that ejects, in `(0, 1]`. Default 0.5: Envoy's 85 % is
    /// too lenient for an endpoint that fails every other request.
    pub(crate) failure_rate: f64,
    /// Requests a window needs before its failure rate counts; 0 turns the detector off.
    /// Default 20: few enough to react within a window at low traffic, enough not to eject on noise.
    pub(crate) failure_rate_min_requests: u32,
    /// The length of a failure-rate window. Default 10 s (Envoy's detection interval).
    pub(crate) failure_rate_window: Duration,
    /// The length of an ejection at multiplier 1; at multiplier n it lasts n times as long.
    /// Default 30 s (Envoy).
    pub(crate) base_ejection: Duration,
    /// The longest ejection. Default 300 s (Envoy, Finagle).
    pub(crate) max_ejection: Duration,
    /// Time in rotation that takes one off an endpoint's ejection multiplier (see
    /// [How long an ejection lasts](self#how-long-an-ejection-lasts)); must be longer than zero.
    /// Default 10 s, Envoy's detection interval, by which its multiplier decreases: an endpoint
    /// back in rotation for 30 s has paid for a 30 s ejection.
    pub(crate) multiplier_decay: Duration,
    /// Relative jitter of an ejection's length, in `[0, 1)`. Default 0.1.
    pub(crate) jitter: f64,
    /// The largest share of endpoints ejected at once, in `[0, 1]`. Default 0.5: Envoy's 10 % can
    /// leave a bad endpoint in rotation in small sets (it ejects none of fewer than 10).
    pub(crate) max_ejected_share: f64,
    /// Below this share of healthy endpoints, ejection is ignored (panic mode), in `[0, 1]`.
    /// Default 0.5 (Envoy's panic threshold).
    pub(crate) panic_threshold: f64,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_failures: 5,
            failure_rate: 0.5,
            failure_rate_min_requests: 20,
            failure_rate_window: Duration::from_secs(10),
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            multiplier_decay: Duration::from_secs(10),
            jitter: 0.1,
            max_ejected_share: 0.5,
            panic_threshold: 0.5,
        }
    }
}

impl OutlierConfig {
    /// Ejection turned off: every endpoint stays in rotation whatever it answers.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Failures in a row that eject; 0 turns the detector off. Default 5 (Envoy, Finagle).
    #[must_use]
    pub fn consecutive_failures(mut self, failures: u32) -> Self {
        self.consecutive_failures = failures;
        self
    }

    /// Sets the failure-rate detector: `rate` of at least `min_requests` within `window`.
    ///
    /// `rate` is the failure share within one window that ejects, in `(0, 1]`; default 0.5
    /// (Envoy's 85 % is too lenient for an endpoint that fails every other request).
    /// `min_requests` is what a window needs before its rate counts, 0 turning the detector off;
    /// default 20, few enough to react within a window at low traffic, enough not to eject on
    /// noise. `window` defaults to 10 s (Envoy's detection interval).
    #[must_use]
    pub fn failure_rate(mut self, rate: f64, min_requests: u32, window: Duration) -> Self {
        self.failure_rate = rate;
        self.failure_rate_min_requests = min_requests;
        self.failure_rate_window = window;
        self
    }

    /// The length of an ejection at multiplier 1; at multiplier n it lasts n times as long.
    /// Default 30 s (Envoy).
    #[must_use]
    pub fn base_ejection(mut self, base: Duration) -> Self {
        self.base_ejection = base;
        self
    }

    /// The longest ejection. Default 300 s (Envoy, Finagle).
    #[must_use]
    pub fn max_ejection(mut self, max: Duration) -> Self {
        self.max_ejection = max;
        self
    }

    /// Time in rotation that takes one off an endpoint's ejection multiplier (see
    /// [How long an ejection lasts](self#how-long-an-ejection-lasts)); must be longer than zero.
    /// Default 10 s, Envoy's detection interval, by which its multiplier decreases: an endpoint
    /// back in rotation for 30 s has paid for a 30 s ejection.
    #[must_use]
    pub fn multiplier_decay(mut self, decay: Duration) -> Self {
        self.multiplier_decay = decay;
        self
    }

    /// Relative jitter of an ejection's length, in `[0, 1)`. Default 0.1.
    #[must_use]
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The largest share of endpoints ejected at once, in `[0, 1]`. Default 0.5: Envoy's 10 % can
    /// leave a bad endpoint in rotation in small sets (it ejects none of fewer than 10).
    #[must_use]
    pub fn max_ejected_share(mut self, share: f64) -> Self {
        self.max_ejected_share = share;
        self
    }

    /// The largest share of the set that may be ejected at once.
    pub fn get_max_ejected_share(&self) -> f64 {
        self.max_ejected_share
    }

    /// Below this share of healthy endpoints, ejection is ignored (panic mode), in `[0, 1]`.
    /// Default 0.5 (Envoy's panic threshold).
    #[must_use]
    pub fn panic_threshold(mut self, threshold: f64) -> Self {
        self.panic_threshold = threshold;
        self
    }
}
