//! Fault schedules: [`Fault`] windows of a [`FaultKind`].

use std::time::Duration;

use http::StatusCode;

use crate::SimError;

/// What goes wrong with an endpoint while a [`Fault`] is active.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum FaultKind {
    /// Every sampled latency is multiplied by this factor (finite, not negative); the answer is
    /// otherwise normal.
    Slow(f64),
    /// Answers this status at once, without the sampled latency (a server that rejects work
    /// before doing it: a 503 from an overloaded or draining process).
    Status(u16),
    /// The request is sent, and after the sampled latency the connection is reset before any
    /// response: a [`mesh_core::error::UpstreamError`] with `request_sent = true`, so retry
    /// layers treat it as possibly processed (only idempotent requests are retried).
    Reset,
    /// The connection is refused at once and the request never sent: a
    /// [`mesh_core::error::ConnectError`], which retry layers know is always safe to retry.
    Refuse,
}

/// One window of a fault schedule: `kind` applies to requests that *start* (reach the endpoint)
/// at a virtual time `t` with `from ≤ t < until`, both measured from the scenario start.
///
/// `until: None` lasts until the run ends; the window's end is the recovery. When windows of one
/// endpoint overlap, the first one in the endpoint's list wins.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Fault {
    /// The fault's kind.
    pub kind: FaultKind,
    /// When it starts, from the scenario start.
    pub from: Duration,
    /// When it ends (the endpoint recovers); `None`: never.
    pub until: Option<Duration>,
}

impl Fault {
    /// `kind` from `from` until the end of the run.
    pub fn new(kind: FaultKind, from: Duration) -> Self {
        Self {
            kind,
            from,
            until: None,
        }
    }

    /// Slower by `factor` from `from`.
    pub fn slow(factor: f64, from: Duration) -> Self {
        Self::new(FaultKind::Slow(factor), from)
    }

    /// Answers `status` at once from `from`.
    pub fn status(status: u16, from: Duration) -> Self {
        Self::new(FaultKind::Status(status), from)
    }

    /// Resets connections after the request was sent, from `from`.
    pub fn reset(from: Duration) -> Self {
        Self::new(FaultKind::Reset, from)
    }

    /// Refuses connections from `from`.
    pub fn refuse(from: Duration) -> Self {
        Self::new(FaultKind::Refuse, from)
    }

    /// Ends the window at `until` (the endpoint recovers then).
    #[must_use]
    pub fn until(mut self, until: Duration) -> Self {
        self.until = Some(until);
        self
    }

    /// Whether the window covers the virtual time `at` (from the scenario start).
    pub fn is_active(&self, at: Duration) -> bool {
        at >= self.from && self.until.is_none_or(|until| at < until)
    }

    /// Checks the window: a valid status (100–999), a finite non-negative slow factor, and
    /// `until` after `from`.
    pub fn validate(&self) -> Result<(), SimError> {
        match self.kind {
            FaultKind::Slow(factor) if !(factor.is_finite() && factor >= 0.0) => {
                return Err(SimError::config(
                    "fault.slow",
                    "the factor must be finite and not negative",
                ));
            }
            FaultKind::Status(status) if StatusCode::from_u16(status).is_err() => {
                return Err(SimError::config(
                    "fault.status",
                    "must be an HTTP status code (100 to 999)",
                ));
            }
            _ => {}
        }
        if self.until.is_some_and(|until| until <= self.from) {
            return Err(SimError::config("fault.until", "must be after fault.from"));
        }
        Ok(())
    }
}

/// The first window of `faults` active at `at`.
pub(crate) fn active(faults: &[Fault], at: Duration) -> Option<FaultKind> {
    faults.iter().find(|f| f.is_active(at)).map(|f| f.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn windows_are_half_open_and_the_first_wins() {
        let faults = [
            Fault::status(503, S(10)).until(S(20)),
            Fault::slow(20.0, S(15)),
        ];
        assert_eq!(active(&faults, S(9)), None);
        assert_eq!(active(&faults, S(10)), Some(FaultKind::Status(503)));
        assert_eq!(active(&faults, S(17)), Some(FaultKind::Status(503)));
        assert_eq!(active(&faults, S(20)), Some(FaultKind::Slow(20.0)));
        assert_eq!(active(&faults, S(1_000_000)), Some(FaultKind::Slow(20.0)));
    }

    #[test]
    fn bad_windows_are_refused() {
        assert!(Fault::status(42, S(0)).validate().is_err());
        assert!(Fault::status(1000, S(0)).validate().is_err());
        assert!(Fault::slow(-1.0, S(0)).validate().is_err());
        assert!(Fault::slow(f64::NAN, S(0)).validate().is_err());
        assert!(Fault::reset(S(5)).until(S(5)).validate().is_err());
        assert!(Fault::refuse(S(5)).until(S(6)).validate().is_ok());
        assert!(Fault::status(503, S(0)).validate().is_ok());
    }
}
