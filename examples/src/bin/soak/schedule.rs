//! What happens at each second of the run. A plain function of the time, so the schedule is
//! tested without a mesh, and a run is the same whatever the machine's speed.

use crate::mesh::PEERS;

/// Every this many seconds the endpoint file is rewritten.
pub(crate) const CHURN_EVERY_SECS: u64 = 5;
/// Every this many seconds one backend is killed and restarted.
pub(crate) const RESTART_EVERY_SECS: u64 = 20;
/// Every this many seconds every sidecar's leaf and bundle are rotated.
pub(crate) const ROTATE_EVERY_SECS: u64 = 60;
/// Every this many seconds memory, fds and counts are recorded.
pub(crate) const SAMPLE_EVERY_SECS: u64 = 30;

/// One change or measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Rewrite the endpoint file, leaving out this peer (or none).
    Endpoints(Option<usize>),
    /// SIGKILL this backend and start it again on its port.
    RestartBackend(usize),
    /// New leaves and bundles for every sidecar.
    Rotate,
    /// Record RSS, fds and counts.
    Sample,
}

/// The events at second `t` (from 1) of the load, in the order they are carried out: the
/// sample first, so it sees the mesh as the previous interval left it.
pub(crate) fn events_at(t: u64) -> Vec<Event> {
    let mut events = Vec::new();
    if t == 0 {
        return events;
    }
    if t.is_multiple_of(SAMPLE_EVERY_SECS) {
        events.push(Event::Sample);
    }
    if t.is_multiple_of(CHURN_EVERY_SECS) {
        // Odd steps leave one peer out, in turn; even steps list all of them again.
        let step = t / CHURN_EVERY_SECS;
        let left_out = (step % 2 == 1).then_some((step / 2) as usize % PEERS);
        events.push(Event::Endpoints(left_out));
    }
    if t.is_multiple_of(RESTART_EVERY_SECS) {
        let k = t / RESTART_EVERY_SECS;
        events.push(Event::RestartBackend((k - 1) as usize % PEERS));
    }
    if t.is_multiple_of(ROTATE_EVERY_SECS) {
        events.push(Event::Rotate);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_of_the_first_two_minutes() {
        assert!(events_at(0).is_empty());
        assert!(events_at(3).is_empty());
        assert_eq!(events_at(5), vec![Event::Endpoints(Some(0))]);
        assert_eq!(events_at(10), vec![Event::Endpoints(None)]);
        assert_eq!(events_at(15), vec![Event::Endpoints(Some(1))]);
        assert_eq!(
            events_at(20),
            vec![Event::Endpoints(None), Event::RestartBackend(0)]
        );
        assert_eq!(events_at(25), vec![Event::Endpoints(Some(2))]);
        assert_eq!(events_at(30), vec![Event::Sample, Event::Endpoints(None)]);
        assert_eq!(events_at(35), vec![Event::Endpoints(Some(0))]);
        assert_eq!(
            events_at(60),
            vec![
                Event::Sample,
                Event::Endpoints(None),
                Event::RestartBackend(2),
                Event::Rotate
            ]
        );
        // Every peer is left out and every backend restarted within each minute and a half.
        let all: Vec<Event> = (1..=90).flat_map(events_at).collect();
        for i in 0..PEERS {
            assert!(all.contains(&Event::Endpoints(Some(i))), "{i}");
            assert!(all.contains(&Event::RestartBackend(i)), "{i}");
        }
    }

    #[test]
    fn ten_minutes_hold_the_counts_the_issue_asks_for() {
        let all: Vec<Event> = (1..=600).flat_map(events_at).collect();
        let count = |f: fn(&Event) -> bool| all.iter().filter(|e| f(e)).count();
        assert_eq!(count(|e| matches!(e, Event::Endpoints(_))), 120);
        assert_eq!(count(|e| matches!(e, Event::RestartBackend(_))), 30);
        assert_eq!(count(|e| matches!(e, Event::Rotate)), 10);
        assert_eq!(count(|e| matches!(e, Event::Sample)), 20);
    }
}
