//! Slow start: a new endpoint's effective weight ramps up over a window instead of jumping to full.
//!
//! A freshly started process is often slower than its peers for a while (cold caches, JIT, lazily
//! opened connections, autoscaled capacity still warming). A latency-aware balancer notices that
//! only after it has already sent the newcomer its full share, and a round-robin one never does.
//! Slow start scales the endpoint's weight by a factor that grows from a floor to 1 over
//! [`window`](SlowStart::window), following Envoy's slow-start formula:
//!
//! ```text
//! factor(t)          = max(min_weight_percent / 100, (t / window) ^ (1 / aggression))   for t < window
//!                    = 1                                                                 for t ≥ window
//! effective_weight   = weight × factor(time since the endpoint was added)
//! ```
//!
//! With `aggression = 1` the ramp is linear; above 1 it rises faster early on (more traffic
//! sooner), below 1 it stays low longer. The floor keeps a brand-new endpoint from receiving
//! nothing at all: with P2C it must win some comparisons to be measured; the floor alone covers
//! `t ≈ 0`.
//!
//! [`SlowStart`] is plain configuration plus arithmetic: no clock, no allocation, no state. It is
//! the balancer that remembers when each endpoint was added.
//!
//! # How a balancer uses it
//!
//! 1. Record `added_at = Instant::now()` (tokio's clock) when an endpoint is first inserted.
//!    A discovery update that merely changes the endpoint (new weight, labels) must **not** reset
//!    it, or a weight tweak would throttle a warm endpoint again.
//! 2. When an endpoint comes back after being out of rotation for long enough to have gone cold
//!    — [`cold_after`](SlowStart::cold_after) (10 s) or longer, see
//!    [`is_cold_after`](SlowStart::is_cold_after) — reset `added_at` to that moment. Envoy does
//!    the same for hosts that pass health checks again.
//!
//!    mesh-balance's balancer does this for both ways out of rotation: an endpoint back from an
//!    outlier ejection (its probe succeeded), and an endpoint whose service turns ready again
//!    after not being ready, which is how [active health checks](crate::health) take an
//!    unhealthy endpoint out. The balancer sees only readiness, not why a service was not ready,
//!    so the length of the spell tells a cold endpoint from a busy one: a service waiting for a
//!    pooled connection is not ready for milliseconds, an unhealthy one for at least two check
//!    intervals. The spell is measured from when a pick first found the endpoint not ready to
//!    when the balancer saw it ready again.
//! 3. Wherever the weight is read to compare endpoints (the cost `load ÷ weight` in P2C), read
//!    [`effective_weight(weight, added_at, now)`](SlowStart::effective_weight) instead. Until the
//!    window has passed this costs one `powf` (none when `aggression` is 1); afterwards one
//!    comparison.
//!
//! ```
//! use std::time::Duration;
//!
//! use mesh_balance::slow_start::SlowStart;
//! use mesh_core::Weight;
//! use tokio::time::Instant;
//!
//! let slow_start = SlowStart::new(Duration::from_secs(60));
//! slow_start.validate().unwrap();
//!
//! let added_at = Instant::now();
//! let weight = Weight::new(10).unwrap();
//! // Half-way through the window, a linear ramp gives half the weight.
//! let later = added_at + Duration::from_secs(30);
//! assert!((slow_start.effective_weight(weight, added_at, later) - 5.0).abs() < 1e-9);
//! // Just added: the 10 % floor.
//! assert!((slow_start.factor(Duration::ZERO) - 0.1).abs() < 1e-9);
//! // After the window: the full weight.
//! assert_eq!(slow_start.effective_weight(weight, added_at, added_at + Duration::from_secs(60)), 10.0);
//! ```

mod config;

pub use self::config::SlowStart;
