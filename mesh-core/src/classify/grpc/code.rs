//! gRPC status codes, as numbers that may be outside the standard range.

use std::fmt;

use http::StatusCode;

/// A gRPC status code, as carried by the `grpc-status` header or trailer.
///
/// The 17 standard codes are associated constants ([`GrpcCode::OK`] … [`GrpcCode::UNAUTHENTICATED`]).
/// A number outside that range is kept as received, so logs can show what the peer really sent, but it
/// is *judged* as [`GrpcCode::UNKNOWN`] everywhere a decision is made (its [`name`](Self::name), and
/// membership in a [`GrpcCodeSet`](super::GrpcCodeSet)), as gRPC clients are required to do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrpcCode(u32);

/// Canonical names of the standard codes, indexed by code value.
const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

impl GrpcCode {
    /// 0: not an error.
    pub const OK: Self = Self(0);
    /// 1: the operation was cancelled, typically by the caller.
    pub const CANCELLED: Self = Self(1);
    /// 2: unknown error; also what malformed or unrecognised statuses are judged as.
    pub const UNKNOWN: Self = Self(2);
    /// 3: the client specified an invalid argument.
    pub const INVALID_ARGUMENT: Self = Self(3);
    /// 4: the deadline expired before the operation could complete.
    pub const DEADLINE_EXCEEDED: Self = Self(4);
    /// 5: some requested entity was not found.
    pub const NOT_FOUND: Self = Self(5);
    /// 6: the entity the client tried to create already exists.
    pub const ALREADY_EXISTS: Self = Self(6);
    /// 7: the caller is not permitted to execute the operation.
    pub const PERMISSION_DENIED: Self = Self(7);
    /// 8: some resource (a quota, the file system …) has been exhausted.
    pub const RESOURCE_EXHAUSTED: Self = Self(8);
    /// 9: the system is not in a state required for the operation.
    pub const FAILED_PRECONDITION: Self = Self(9);
    /// 10: the operation was aborted, typically by a concurrency conflict.
    pub const ABORTED: Self = Self(10);
    /// 11: the operation was attempted past the valid range.
    pub const OUT_OF_RANGE: Self = Self(11);
    /// 12: the operation is not implemented or supported by the server.
    pub const UNIMPLEMENTED: Self = Self(12);
    /// 13: an internal invariant was broken.
    pub const INTERNAL: Self = Self(13);
    /// 14: the service is currently unavailable; usually transient.
    pub const UNAVAILABLE: Self = Self(14);
    /// 15: unrecoverable data loss or corruption.
    pub const DATA_LOSS: Self = Self(15);
    /// 16: the request lacks valid authentication credentials.
    pub const UNAUTHENTICATED: Self = Self(16);

    /// The code with this number; numbers outside `0..=16` are kept (see the type docs).
    pub const fn new(value: u32) -> Self {
        Self(value)
    }

    /// The number as received.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// Whether this is one of the 17 standard codes.
    pub const fn is_standard(self) -> bool {
        self.0 < NAMES.len() as u32
    }

    /// Whether this is [`GrpcCode::OK`].
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// The code decisions are based on: itself when standard, otherwise [`GrpcCode::UNKNOWN`].
    pub const fn judged(self) -> Self {
        if self.is_standard() {
            self
        } else {
            Self::UNKNOWN
        }
    }

    /// The canonical upper-case name (`"UNAVAILABLE"`), a stable label for logs and metrics.
    ///
    /// A non-standard number is named `"UNKNOWN"`, the code it is judged as.
    pub const fn name(self) -> &'static str {
        NAMES[self.judged().0 as usize]
    }

    /// Parses a `grpc-status` value: `1*DIGIT`, surrounding whitespace tolerated.
    ///
    /// Returns `None` when the value is empty, not all digits, or does not fit in a `u32`; callers
    /// judge such a value as [`GrpcCode::UNKNOWN`].
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let digits = bytes.trim_ascii();
        if digits.is_empty() {
            return None;
        }
        let mut value: u32 = 0;
        for &b in digits {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
        }
        Some(Self(value))
    }

    /// The code a gRPC client uses for a response that carries no `grpc-status`, from its HTTP status,
    /// per gRPC's "HTTP to gRPC Status Code Mapping" (such responses usually come from an intermediary).
    ///
    /// 400 → INTERNAL, 401 → UNAUTHENTICATED, 403 → PERMISSION_DENIED, 404 → UNIMPLEMENTED,
    /// 429, 502, 503, 504 → UNAVAILABLE, anything else → UNKNOWN. The mapping is not the inverse of
    /// any gRPC-to-HTTP mapping; it is only meant for this direction.
    pub fn from_http_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => Self::INTERNAL,
            401 => Self::UNAUTHENTICATED,
            403 => Self::PERMISSION_DENIED,
            404 => Self::UNIMPLEMENTED,
            429 | 502 | 503 | 504 => Self::UNAVAILABLE,
            _ => Self::UNKNOWN,
        }
    }
}

impl From<u32> for GrpcCode {
    fn from(value: u32) -> Self {
        Self(value)
    }
}

impl From<GrpcCode> for u32 {
    fn from(code: GrpcCode) -> Self {
        code.0
    }
}

impl fmt::Debug for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GrpcCode({} {})", self.0, self.name())
    }
}

/// Formats as `UNAVAILABLE (14)`.
impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}
