//! [`FailureDetail`]: a short reason for a failure that may leave the process.
//!
//! A cause name (`connect`) tells a client *what* failed but not *why*; the error's own text tells
//! why, but it names certificates, SPIFFE IDs and internal addresses, which must not reach a
//! client. A detail sits between the two: it is built only from `&'static str` pieces chosen when
//! the program was compiled, so by construction it cannot carry anything learned at run time.
//!
//! Details come from an allow-list: [`describe_failure`] knows mesh-core's own failures, I/O error
//! kinds and HTTP/2 reset reasons; a crate whose errors mesh-core cannot name (mesh-tls's
//! handshake errors, say: mesh-core does not depend on it) supplies a [`Describe`] function, which
//! [`ErrorResponseLayer::describe_with`](super::ErrorResponseLayer::describe_with) consults before
//! the built-in list. An error nobody describes gets no detail, only its cause name.

use std::error::Error;
use std::fmt;

use super::Timeout;

/// A short, non-sensitive reason for a failure, such as
/// `tls: certificate not valid for the expected identity (IdentityMismatch)`.
///
/// Made of a fixed summary and an optional fixed kind name, both `&'static str`, so it can never
/// hold a certificate, a host name or an address. Shown as `summary` or `summary (kind)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FailureDetail {
    summary: &'static str,
    kind: Option<&'static str>,
}

impl FailureDetail {
    /// A detail with only a summary (`"connection refused"`).
    pub const fn new(summary: &'static str) -> Self {
        Self {
            summary,
            kind: None,
        }
    }

    /// The same summary with the name of the typed error that caused it (`"WrongTrustDomain"`).
    pub const fn with_kind(self, kind: &'static str) -> Self {
        Self {
            summary: self.summary,
            kind: Some(kind),
        }
    }

    /// The summary.
    pub const fn summary(&self) -> &'static str {
        self.summary
    }

    /// The kind name, when there is one.
    pub const fn kind(&self) -> Option<&'static str> {
        self.kind
    }
}

impl fmt::Display for FailureDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Some(kind) => write!(f, "{} ({kind})", self.summary),
            None => f.write_str(self.summary),
        }
    }
}

/// Describes the errors of one crate: `Some` for an error it recognises (the error itself, not its
/// causes: the caller walks the chain), `None` otherwise. A plain function pointer, so it holds no
/// state and an edge can be configured with it for free.
pub type Describe = fn(&(dyn Error + 'static)) -> Option<FailureDetail>;

/// The detail of `err`: walks the cause chain from the outside in (looking inside `io::Error`s that
/// wrap another error) and returns the first detail `extra` or the built-in allow-list gives.
///
/// The built-in list: [`Timeout`] (`timed out`), the I/O error kinds `ConnectionRefused`, `ConnectionReset`, `ConnectionAborted`, `TimedOut`,
/// `HostUnreachable`, `NetworkUnreachable`, `UnexpectedEof` and `BrokenPipe`, and HTTP/2 resets and
/// GOAWAYs by reason. Everything else gives `None`.
///
/// ```
/// use mesh_core::error::{describe_failure, ConnectError, Timeout};
///
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let detail = describe_failure(&ConnectError::new(refused), None).unwrap();
/// assert_eq!(detail.to_string(), "connection refused");
/// let detail = describe_failure(&ConnectError::new(Timeout::new()), None).unwrap();
/// assert_eq!(detail.to_string(), "timed out");
/// ```
pub fn describe_failure(
    err: &(dyn Error + 'static),
    extra: Option<Describe>,
) -> Option<FailureDetail> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(detail) = extra
            .and_then(|describe| describe(e))
            .or_else(|| builtin(e))
        {
            return Some(detail);
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn builtin(err: &(dyn Error + 'static)) -> Option<FailureDetail> {
    if err.is::<Timeout>() || err.is::<tokio::time::error::Elapsed>() {
        return Some(FailureDetail::new("timed out"));
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind as K;
        let summary = match io.kind() {
            K::ConnectionRefused => "connection refused",
            K::ConnectionReset => "connection reset",
            K::ConnectionAborted => "connection aborted",
            K::TimedOut => "timed out",
            K::HostUnreachable => "host unreachable",
            K::NetworkUnreachable => "network unreachable",
            K::UnexpectedEof => "connection closed early",
            K::BrokenPipe => "connection closed",
            _ => return None,
        };
        return Some(FailureDetail::new(summary));
    }
    // HTTP/2 errors come from hyper's HTTP/2 client or server, compiled with either feature.
    #[cfg(any(feature = "client", feature = "server"))]
    if let Some(h2) = err.downcast_ref::<h2::Error>() {
        let summary = if h2.is_go_away() {
            "http2: connection going away"
        } else if h2.is_reset() {
            "http2: stream reset"
        } else if h2.reason().is_some() {
            "http2: error"
        } else {
            return None;
        };
        let detail = FailureDetail::new(summary);
        return Some(match h2.reason().and_then(h2_reason_name) {
            Some(name) => detail.with_kind(name),
            None => detail,
        });
    }
    None
}

/// The RFC 9113 §7 name of an HTTP/2 error code, for the codes it defines.
#[cfg(any(feature = "client", feature = "server"))]
fn h2_reason_name(reason: h2::Reason) -> Option<&'static str> {
    Some(match reason {
        h2::Reason::NO_ERROR => "NO_ERROR",
        h2::Reason::PROTOCOL_ERROR => "PROTOCOL_ERROR",
        h2::Reason::INTERNAL_ERROR => "INTERNAL_ERROR",
        h2::Reason::FLOW_CONTROL_ERROR => "FLOW_CONTROL_ERROR",
        h2::Reason::SETTINGS_TIMEOUT => "SETTINGS_TIMEOUT",
        h2::Reason::STREAM_CLOSED => "STREAM_CLOSED",
        h2::Reason::FRAME_SIZE_ERROR => "FRAME_SIZE_ERROR",
        h2::Reason::REFUSED_STREAM => "REFUSED_STREAM",
        h2::Reason::CANCEL => "CANCEL",
        h2::Reason::COMPRESSION_ERROR => "COMPRESSION_ERROR",
        h2::Reason::CONNECT_ERROR => "CONNECT_ERROR",
        h2::Reason::ENHANCE_YOUR_CALM => "ENHANCE_YOUR_CALM",
        h2::Reason::INADEQUATE_SECURITY => "INADEQUATE_SECURITY",
        h2::Reason::HTTP_1_1_REQUIRED => "HTTP_1_1_REQUIRED",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ConnectError, UpstreamError};

    #[derive(Debug)]
    struct Secret;

    impl fmt::Display for Secret {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("10.0.0.7:8443 presented CN=internal-db")
        }
    }

    impl Error for Secret {}

    fn secret_detail(err: &(dyn Error + 'static)) -> Option<FailureDetail> {
        err.is::<Secret>()
            .then(|| FailureDetail::new("tls: refused").with_kind("Secret"))
    }

    #[test]
    fn unknown_errors_have_no_detail() {
        assert_eq!(describe_failure(&ConnectError::new(Secret), None), None);
        let other = std::io::Error::other("dial 10.0.0.7 failed");
        assert_eq!(describe_failure(&ConnectError::new(other), None), None);
    }

    #[test]
    fn a_describer_names_its_own_errors_even_inside_io_errors() {
        let wrapped = std::io::Error::other(Secret);
        let detail = describe_failure(&ConnectError::new(wrapped), Some(secret_detail)).unwrap();
        assert_eq!(detail.to_string(), "tls: refused (Secret)");
        assert_eq!(detail.kind(), Some("Secret"));
    }

    #[test]
    #[cfg(any(feature = "client", feature = "server"))]
    fn io_kinds_and_h2_reasons_are_described() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(
            describe_failure(&UpstreamError::new(reset), None),
            Some(FailureDetail::new("connection reset"))
        );
        let refused = h2::Error::from(h2::Reason::REFUSED_STREAM);
        let detail = describe_failure(&UpstreamError::unsent(refused), None).unwrap();
        // A bare reason (not a RST_STREAM received from the peer, which reads "http2: stream reset").
        assert_eq!(detail.to_string(), "http2: error (REFUSED_STREAM)");
    }
}
