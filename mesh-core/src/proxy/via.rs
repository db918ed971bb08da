//! The `Via` header (RFC 9110 §7.6.3): which intermediaries a message passed.

use http::header::VIA;
use http::{HeaderMap, Version};

use super::append_list_element;
use super::forwarded::is_tchar;

/// This proxy's name in `Via` headers: a pseudonym such as `mesh` or `sidecar-7`.
///
/// Validated once, so that appending cannot fail: a `Via` entry is `protocol received-by`, and
/// `received-by` is a `host[:port]` or a pseudonym token (RFC 9110 §7.6.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViaName(String);

impl ViaName {
    /// Accepts a token (letters, digits, ``!#$%&'*+-.^_`|~``) or a `host:port` / `[ipv6]:port` form.
    ///
    /// # Errors
    ///
    /// [`InvalidViaName`] for an empty name or one with other characters (spaces, commas, quotes).
    pub fn new(name: &str) -> Result<Self, InvalidViaName> {
        let allowed = |b: u8| is_tchar(b) || matches!(b, b':' | b'[' | b']');
        if name.is_empty() || !name.bytes().all(allowed) {
            return Err(InvalidViaName(()));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A name given to [`ViaName::new`] cannot appear in a `Via` header.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid Via name: expected a token or host[:port]")]
pub struct InvalidViaName(());

/// Appends this proxy's entry to `Via`: `1.1 <name>` for HTTP/1.1, `2 <name>` for HTTP/2.
///
/// `version` is the protocol the message was *received* with (`req.version()` for a request). The
/// protocol name is omitted because it is HTTP (RFC 9110 §7.6.3). Like
/// [`ForwardedElement::append_to`](super::ForwardedElement::append_to), the entry joins the last
/// existing field line.
///
/// ```
/// use http::{HeaderMap, Version};
/// use mesh_core::proxy::{ViaName, append_via};
///
/// let name = ViaName::new("mesh").unwrap();
/// let mut headers = HeaderMap::new();
/// headers.insert("via", "1.1 edge".parse().unwrap());
/// append_via(&mut headers, Version::HTTP_2, &name);
/// assert_eq!(headers["via"], "1.1 edge, 2 mesh");
/// ```
pub fn append_via(headers: &mut HeaderMap, version: Version, name: &ViaName) {
    let protocol = match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    };
    let entry = format!("{protocol} {}", name.0);
    append_list_element(headers, VIA, entry.as_bytes());
}
