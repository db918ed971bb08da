//! [`TrustDomain`]: the authority part of a SPIFFE ID.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::SpiffeIdError;

/// The longest trust domain name, in bytes (SPIFFE-ID spec, section 2.1).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// A SPIFFE trust domain: the realm of one signing authority (`prod.example` in
/// `spiffe://prod.example/ns/shop`).
///
/// Characters are limited to `[a-z0-9._-]`, which also rules out ports, user info and
/// percent-encoding. Upper case is refused rather than folded (see the [module docs](crate::id)),
/// so one domain has one spelling.
///
/// Cloning is one reference count.
///
/// ```
/// use mesh_tls::{SpiffeIdError, TrustDomain};
///
/// let td: TrustDomain = "prod.example".parse()?;
/// assert_eq!(td.as_str(), "prod.example");
/// assert!("prod.example:443".parse::<TrustDomain>().is_err());
/// assert_eq!(
///     "Prod.Example".parse::<TrustDomain>(),
///     Err(SpiffeIdError::UppercaseTrustDomain { byte: b'P' })
/// );
/// # Ok::<(), mesh_tls::SpiffeIdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(Arc<str>);

impl TrustDomain {
    /// Parses a trust domain name (not a `spiffe://` URI; see [`TrustDomain::from_id`]).
    pub fn new(name: &str) -> Result<Self, SpiffeIdError> {
        validate(name.as_bytes())?;
        Ok(Self(Arc::from(name)))
    }

    /// The trust domain of a SPIFFE ID given as text (`spiffe://td/...`).
    pub fn from_id(id: &str) -> Result<Self, SpiffeIdError> {
        super::SpiffeId::new(id).map(|id| id.trust_domain().clone())
    }

    /// The name (lower-case).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a name that the caller checked with [`validate`].
    pub(super) fn from_valid(name: Arc<str>) -> Self {
        Self(name)
    }
}

/// Checks a trust domain name: not empty, at most 255 bytes, `[a-z0-9._-]` only.
pub(super) fn validate(name: &[u8]) -> Result<(), SpiffeIdError> {
    if name.is_empty() {
        return Err(SpiffeIdError::EmptyTrustDomain);
    }
    if name.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong { len: name.len() });
    }
    match name.iter().find(|&&b| !is_trust_domain_byte(b)) {
        Some(&byte) if byte.is_ascii_uppercase() => {
            Err(SpiffeIdError::UppercaseTrustDomain { byte })
        }
        Some(&byte) => Err(SpiffeIdError::BadTrustDomainChar { byte }),
        None => Ok(()),
    }
}

fn is_trust_domain_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({:?})", &*self.0)
    }
}

impl AsRef<str> for TrustDomain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
