//! The error a replayed body can report on top of the original body's errors.

use std::fmt;

/// A [`ReplayBody`](super::ReplayBody) cannot give the bytes it owes its reader.
///
/// It only happens when a replay is read although it was not replayable: the copy was dropped
/// at the cap, or the original body failed, while this reader still had bytes to catch up on.
/// The retry layer checks [`ReplayBody::status`](super::ReplayBody::status) first, so through it
/// this error is never seen; returning it (instead of skipping bytes) is what makes the "no byte
/// lost" guarantee hold for direct users too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayError {
    capped: bool,
}

impl ReplayError {
    pub(crate) const fn capped() -> Self {
        Self { capped: true }
    }

    pub(crate) const fn body_failed() -> Self {
        Self { capped: false }
    }

    /// Whether the copy was dropped because the body outgrew the cap (else: the original body
    /// failed while another reader was reading it).
    pub fn is_capped(&self) -> bool {
        self.capped
    }
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.capped {
            f.write_str("request body cannot be replayed: it outgrew the replay buffer")
        } else {
            f.write_str("request body cannot be replayed: the original body failed")
        }
    }
}

impl std::error::Error for ReplayError {}
