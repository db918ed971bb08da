//! Consecutive-result thresholds: when a run of probe results flips the state.

use super::HealthState;

/// Turns probe results into state transitions.
///
/// A healthy endpoint turns unhealthy after `unhealthy` consecutive failures; an unhealthy one
/// turns healthy after `healthy` consecutive successes. A result of the other kind resets the
/// run. An endpoint that *starts* unhealthy needs a single success, as in Envoy, where a new host
/// waiting for its first check is marked healthy by the first one that passes: the threshold
/// exists to damp flapping, and there is nothing to damp before the first verdict.
#[derive(Debug)]
pub(crate) struct Thresholds {
    state: HealthState,
    run: u32,
    healthy: u32,
    unhealthy: u32,
    starting: bool,
}

impl Thresholds {
    pub(crate) fn new(initial: HealthState, healthy: u32, unhealthy: u32) -> Self {
        Self {
            state: initial,
            run: 0,
            healthy: healthy.max(1),
            unhealthy: unhealthy.max(1),
            starting: initial == HealthState::Unhealthy,
        }
    }

    /// Records one probe result; returns the new state when it changed.
    pub(crate) fn record(&mut self, success: bool) -> Option<HealthState> {
        let (needed, next) = match (self.state, success) {
            (HealthState::Healthy, true) | (HealthState::Unhealthy, false) => {
                self.run = 0;
                return None;
            }
            (HealthState::Healthy, false) => (self.unhealthy, HealthState::Unhealthy),
            (HealthState::Unhealthy, true) if self.starting => (1, HealthState::Healthy),
            (HealthState::Unhealthy, true) => (self.healthy, HealthState::Healthy),
        };
        self.run += 1;
        if self.run < needed {
            return None;
        }
        self.run = 0;
        self.starting = false;
        self.state = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &mut Thresholds, results: &[bool]) -> Vec<Option<HealthState>> {
        results.iter().map(|&ok| t.record(ok)).collect()
    }

    #[test]
    fn flips_exactly_at_each_threshold() {
        let mut t = Thresholds::new(HealthState::Healthy, 2, 3);
        let u = Some(HealthState::Unhealthy);
        let h = Some(HealthState::Healthy);
        assert_eq!(run(&mut t, &[false, false, false]), [None, None, u]);
        assert_eq!(run(&mut t, &[true, true]), [None, h]);
    }

    #[test]
    fn the_other_result_resets_the_run() {
        let mut t = Thresholds::new(HealthState::Healthy, 2, 3);
        let u = Some(HealthState::Unhealthy);
        assert_eq!(
            run(&mut t, &[false, false, true, false, false, false]),
            [None, None, None, None, None, u]
        );
        assert_eq!(
            run(&mut t, &[true, false, true, true]),
            [None, None, None, Some(HealthState::Healthy)]
        );
    }

    #[test]
    fn starting_unhealthy_needs_one_success_then_the_thresholds_apply() {
        let mut t = Thresholds::new(HealthState::Unhealthy, 3, 1);
        assert_eq!(
            run(&mut t, &[false, true]),
            [None, Some(HealthState::Healthy)]
        );
        assert_eq!(run(&mut t, &[false]), [Some(HealthState::Unhealthy)]);
        assert_eq!(
            run(&mut t, &[true, true, true]),
            [None, None, Some(HealthState::Healthy)]
        );
    }
}
