//! Request-target normalisation: [`normalize_target`] and [`NormalizeTargetLayer`]. The why and the
//! rules are on [`normalize_target`], the page users see.

mod host;
mod layer;
mod path;

use std::fmt;

use http::uri::{PathAndQuery, Uri};
use http::{Method, Request};

pub use host::{canonical_host, request_host, same_host};
pub use layer::{NormalizeTarget, NormalizeTargetFuture, NormalizeTargetLayer};
pub use path::normalize_path;

use crate::error::{BadRequest, BoxError, MethodNotAllowed};

/// What to do with an encoded `/` (`%2F`) or `\` (`%5C`) in a path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EscapedSlashes {
    /// Refuse the request (`400`), and refuse a raw `\` too. The default: servers disagree on
    /// whether `%2F` separates segments (and some treat `\` as `/`), so no single normalisation
    /// is safe to forward.
    #[default]
    Reject,
    /// Keep them as escapes (upper-cased), inside their segment. For APIs that put encoded
    /// slashes in identifiers and whose backends do not decode them before routing.
    Keep,
}

/// How [`normalize_target`] treats a request.
///
/// ```
/// use mesh_core::proxy::{EscapedSlashes, TargetRules};
///
/// let rules = TargetRules::default().escaped_slashes(EscapedSlashes::Keep);
/// assert!(rules.merge_slashes);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetRules {
    /// Merge repeated slashes (`//admin` → `/admin`). Default `true`: most servers and routers
    /// treat them as one, so matching without merging can be bypassed.
    pub merge_slashes: bool,
    /// Encoded `/` and `\`. Default [`EscapedSlashes::Reject`].
    pub escaped_slashes: EscapedSlashes,
    /// Let `CONNECT` requests through (their target is an authority, not a path). Default
    /// `false`: answered `405`.
    pub allow_connect: bool,
    /// Refuse an HTTP/1.1 request that names no host (RFC 9112 §3.2 requires `400`). Default
    /// `true`. A missing host cannot make a host rule match, so layers that only guard against
    /// ambiguity (mesh-tls's authorization) turn it off.
    pub require_host: bool,
}

impl Default for TargetRules {
    fn default() -> Self {
        Self {
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Reject,
            allow_connect: false,
            require_host: true,
        }
    }
}

impl TargetRules {
    /// Sets [`merge_slashes`](Self::merge_slashes).
    pub fn merge_slashes(mut self, merge: bool) -> Self {
        self.merge_slashes = merge;
        self
    }

    /// Sets [`escaped_slashes`](Self::escaped_slashes).
    pub fn escaped_slashes(mut self, action: EscapedSlashes) -> Self {
        self.escaped_slashes = action;
        self
    }

    /// Sets [`require_host`](Self::require_host).
    pub fn require_host(mut self, require: bool) -> Self {
        self.require_host = require;
        self
    }

    /// Sets [`allow_connect`](Self::allow_connect).
    pub fn allow_connect(mut self, allow: bool) -> Self {
        self.allow_connect = allow;
        self
    }
}

/// Why [`normalize_target`] refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TargetError {
    /// The path does not start with `/` (and is not `*` of `OPTIONS *`).
    NotOriginForm,
    /// A `%` not followed by two hex digits.
    BadPercentEncoding,
    /// An encoded `/` or `\` (`%2F`, `%5C`), refused by [`EscapedSlashes::Reject`].
    EncodedSlash,
    /// A raw `\` in the path, refused by [`EscapedSlashes::Reject`].
    Backslash,
    /// More than one `Host` header.
    DuplicateHost,
    /// A `Host` (or URI authority) that is not a valid authority, or carries userinfo.
    InvalidHost,
    /// `Host` names another host or port than the URI's authority (absolute form, or HTTP/2
    /// `:authority`).
    HostMismatch,
    /// An HTTP/1.1 request without any host (see [`TargetRules::require_host`]).
    MissingHost,
    /// A `CONNECT` request where [`TargetRules::allow_connect`] is off.
    ConnectNotAllowed,
}

impl TargetError {
    /// The mesh-core failure this refusal is answered with: [`MethodNotAllowed`] (`405`) for
    /// `CONNECT`, else [`BadRequest`] (`400`) caused by this error.
    pub fn into_failure(self) -> BoxError {
        match self {
            Self::ConnectNotAllowed => MethodNotAllowed::new().into(),
            other => BadRequest::new(other).into(),
        }
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotOriginForm => "the request path does not start with '/'",
            Self::BadPercentEncoding => "the request path has a '%' not followed by two hex digits",
            Self::EncodedSlash => "the request path has an encoded '/' or '\\'",
            Self::Backslash => "the request path has a '\\'",
            Self::DuplicateHost => "the request has more than one Host header",
            Self::InvalidHost => "the request's host is not a valid authority",
            Self::HostMismatch => "the Host header and the request target name different hosts",
            Self::MissingHost => "the HTTP/1.1 request has no Host header",
            Self::ConnectNotAllowed => "CONNECT is not served here",
        })
    }
}

impl std::error::Error for TargetError {}

/// Checks the request's host and normalises its path in place, so that authorization and routing
/// decide on one meaning of the target, and the application gets that same target.
///
/// An authorization rule on `/admin`, or a route for `internal.example`, is only as good as the
/// parsing that feeds it. When the proxy matches the raw path and the application resolves it
/// differently, `/x/../admin`, `//admin`, `/./admin` and `/%61dmin` all slip past a deny rule and
/// reach `/admin`; when the proxy reads one host and the backend another (two `Host` headers, an
/// absolute-form URI naming one host and `Host` another, HTTP/2 `:authority` differing from
/// `host`), a host rule is bypassed the same way. Envoy's answer, followed here, is to normalise
/// the target **once**, at the edge, to decide on the normalised form, **and to forward that
/// form**, so that what was authorised or routed is exactly what the application sees.
///
/// `normalize_target` does, in this order:
///
/// 1. `CONNECT` is refused ([`TargetError::ConnectNotAllowed`], answered `405`) unless
///    [`TargetRules::allow_connect`] is set (a proxy that does not tunnel must not hand a tunnel
///    request to an application that does not expect one);
/// 2. the host: at most one `Host`, equal to the URI's authority when there is one, present on
///    HTTP/1.1 (see [`same_host`]: case and one trailing dot do not matter);
/// 3. the path (query untouched), by [`normalize_path`]: escapes of unreserved characters decoded
///    (`%61` → `a`), other escapes upper-cased, an encoded `/` or `\` (and a raw `\`) refused by
///    default, dot segments resolved, repeated slashes merged; the request's URI is rewritten when
///    the path changed.
///
/// Refusals are typed ([`TargetError`]) and become `400 Bad Request` through
/// [`BadRequest`](crate::error::BadRequest) (or `405` for `CONNECT`) at mesh-core's
/// `ErrorResponseLayer`. mesh-tls's authorization layer runs the same normalisation before it
/// decides, so it is safe on its own; a proxy puts [`NormalizeTargetLayer`] (or calls
/// [`normalize_target`]) before routing as well.
///
/// Not done, like Envoy by default: `;` path parameters are left as they are, and the query is
/// never touched.
///
/// ```
/// use http::Request;
/// use mesh_core::proxy::{TargetError, TargetRules, normalize_target};
///
/// let rules = TargetRules::default();
/// let mut req = Request::get("/x/../admin/%75sers?page=2")
///     .header("host", "shop.example")
///     .body(())
///     .unwrap();
/// normalize_target(&mut req, &rules).unwrap();
/// assert_eq!(req.uri(), "/admin/users?page=2");
///
/// let mut twice = Request::get("/")
///     .header("host", "public.example")
///     .header("host", "secret.example")
///     .body(())
///     .unwrap();
/// assert_eq!(normalize_target(&mut twice, &rules), Err(TargetError::DuplicateHost));
/// ```
///
/// Allocates only when the path changes.
///
/// # Errors
///
/// [`TargetError`] when the request is refused; the request is then left as it was.
pub fn normalize_target<B>(req: &mut Request<B>, rules: &TargetRules) -> Result<(), TargetError> {
    let connect = req.method() == Method::CONNECT;
    if connect && !rules.allow_connect {
        return Err(TargetError::ConnectNotAllowed);
    }
    host::check_host(req, rules.require_host)?;
    if connect {
        return Ok(()); // authority-form: no path
    }
    let path = req.uri().path();
    if path == "*" && req.method() == Method::OPTIONS {
        return Ok(());
    }
    let normalized = match normalize_path(path, rules)? {
        std::borrow::Cow::Borrowed(_) => return Ok(()),
        std::borrow::Cow::Owned(normalized) => normalized,
    };
    let with_query = match req.uri().query() {
        Some(query) => format!("{normalized}?{query}"),
        None => normalized,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(with_query).map_err(|_| TargetError::NotOriginForm)?);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| TargetError::NotOriginForm)?;
    Ok(())
}

#[cfg(test)]
mod tests;
