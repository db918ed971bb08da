//! A set of gRPC codes, as a bitset.

use std::fmt;

use super::GrpcCode;

/// A set of gRPC status codes: which codes a [`GrpcClassifier`](super::GrpcClassifier) counts as
/// failures.
///
/// It is a `u32` bitset over the 17 standard codes, `Copy` and cheap to test. Codes are judged
/// ([`GrpcCode::judged`]) before they are inserted or looked up, so a non-standard code behaves exactly
/// like [`GrpcCode::UNKNOWN`].
///
/// ```
/// use mesh_core::classify::{GrpcCode, GrpcCodeSet};
///
/// let set = GrpcCodeSet::SERVER_ERRORS.with(GrpcCode::RESOURCE_EXHAUSTED);
/// assert!(set.contains(GrpcCode::UNAVAILABLE));
/// assert!(set.contains(GrpcCode::RESOURCE_EXHAUSTED));
/// assert!(!set.contains(GrpcCode::NOT_FOUND));
/// assert!(set.contains(GrpcCode::new(99))); // judged as UNKNOWN
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct GrpcCodeSet(u32);

impl GrpcCodeSet {
    /// No code.
    pub const EMPTY: Self = Self(0);

    /// The default failure set: codes that say the *server* (or the path to it) has a problem, as
    /// opposed to codes that describe the request (`INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`,
    /// `PERMISSION_DENIED`, `FAILED_PRECONDITION` …), which a healthy server returns routinely.
    ///
    /// Members: `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`,
    /// `DATA_LOSS`. This mirrors the defaults of common service meshes. `CANCELLED` is left out (the
    /// caller usually gave up), and so is `RESOURCE_EXHAUSTED`, which is most often a per-client quota
    /// rather than an unhealthy server; add it when your servers use it for load shedding.
    pub const SERVER_ERRORS: Self = Self::EMPTY
        .with(GrpcCode::UNKNOWN)
        .with(GrpcCode::DEADLINE_EXCEEDED)
        .with(GrpcCode::UNIMPLEMENTED)
        .with(GrpcCode::INTERNAL)
        .with(GrpcCode::UNAVAILABLE)
        .with(GrpcCode::DATA_LOSS);

    /// Every standard code except `OK`.
    pub const ALL_ERRORS: Self = Self(((1 << 17) - 1) & !1);

    const fn bit(code: GrpcCode) -> u32 {
        1 << code.judged().value()
    }

    /// The set with `code` added.
    #[must_use]
    pub const fn with(self, code: GrpcCode) -> Self {
        Self(self.0 | Self::bit(code))
    }

    /// The set with `code` removed.
    #[must_use]
    pub const fn without(self, code: GrpcCode) -> Self {
        Self(self.0 & !Self::bit(code))
    }

    /// Whether `code` (judged) is in the set.
    pub const fn contains(self, code: GrpcCode) -> bool {
        self.0 & Self::bit(code) != 0
    }

    /// Whether the set has no code.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The codes in the set, in ascending order.
    pub fn iter(self) -> impl Iterator<Item = GrpcCode> {
        (0..17u32)
            .map(GrpcCode::new)
            .filter(move |&code| self.contains(code))
    }
}

impl FromIterator<GrpcCode> for GrpcCodeSet {
    fn from_iter<I: IntoIterator<Item = GrpcCode>>(iter: I) -> Self {
        iter.into_iter().fold(Self::EMPTY, Self::with)
    }
}

impl fmt::Debug for GrpcCodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(GrpcCode::name))
            .finish()
    }
}
