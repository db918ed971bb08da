//! [`SpiffeId`]: a parsed, validated SPIFFE ID.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::{SpiffeIdError, TrustDomain, trust_domain};

/// The longest SPIFFE ID, in bytes: the length the spec requires every implementation to accept,
/// and the limit of [`mesh_core::Identity`].
pub const MAX_SPIFFE_ID_LEN: usize = mesh_core::endpoint::MAX_IDENTITY_LEN;

const SCHEME: &str = "spiffe://";

/// A SPIFFE ID (`spiffe://trust-domain/path`), validated.
///
/// The scheme and trust domain are lower-case (upper case there is refused, see the
/// [module docs](crate::id)), the path is case-sensitive, so each ID has one spelling and equality
/// and hashing compare the text. Cloning is one reference count; the ID, its trust domain and its
/// path are all borrowed from one allocation.
///
/// ```
/// use mesh_tls::{SpiffeId, SpiffeIdError};
///
/// let id: SpiffeId = "spiffe://prod.example/ns/Shop/sa/web".parse()?;
/// assert_eq!(id.to_string(), "spiffe://prod.example/ns/Shop/sa/web");
/// assert_eq!(id.trust_domain().as_str(), "prod.example");
/// assert_eq!(id.path(), "/ns/Shop/sa/web");
/// assert!(id.path_starts_with("/ns/Shop"));
/// assert!(!id.path_starts_with("/ns/Sh"));
///
/// // The text form mesh-core carries in endpoints and request extensions.
/// let identity: mesh_core::Identity = id.to_identity();
/// assert_eq!(identity.as_str(), id.as_str());
///
/// assert_eq!(
///     "spiffe://Prod.Example/ns/shop".parse::<SpiffeId>(),
///     Err(SpiffeIdError::UppercaseTrustDomain { byte: b'P' })
/// );
/// # Ok::<(), mesh_tls::SpiffeIdError>(())
/// ```
#[derive(Clone)]
pub struct SpiffeId(Arc<Inner>);

struct Inner {
    /// The whole ID.
    text: Box<str>,
    trust_domain: TrustDomain,
    /// Where the path starts in `text` (its length when there is no path).
    path_start: usize,
}

impl SpiffeId {
    /// Parses a SPIFFE ID; the error names the first rule it breaks.
    pub fn new(id: &str) -> Result<Self, SpiffeIdError> {
        if id.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong { len: id.len() });
        }
        let rest = match id.get(..SCHEME.len()) {
            Some(SCHEME) => &id[SCHEME.len()..],
            Some(scheme) if scheme.eq_ignore_ascii_case(SCHEME) => {
                return Err(SpiffeIdError::UppercaseScheme);
            }
            _ => return Err(SpiffeIdError::WrongScheme),
        };
        let (domain, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        trust_domain::validate(domain.as_bytes())?;
        validate_path(path)?;

        Ok(Self(Arc::new(Inner {
            text: Box::from(id),
            trust_domain: TrustDomain::from_valid(Arc::from(domain)),
            path_start: SCHEME.len() + domain.len(),
        })))
    }

    /// Builds `spiffe://<trust_domain><path>`; `path` is empty or starts with `/`.
    pub fn from_parts(trust_domain: &TrustDomain, path: &str) -> Result<Self, SpiffeIdError> {
        Self::new(&format!("{SCHEME}{trust_domain}{path}"))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.0.trust_domain
    }

    /// The path: empty, or `/` followed by segments.
    pub fn path(&self) -> &str {
        &self.0.text[self.0.path_start..]
    }

    /// The path segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path().split('/').skip(1)
    }

    /// Whether the path starts with `prefix` **by whole segments**: `/ns/shop` is a prefix of
    /// `/ns/shop` and `/ns/shop/sa/web`, not of `/ns/shopping`. An empty prefix or `/` matches every
    /// path; a trailing `/` on the prefix is ignored.
    pub fn path_starts_with(&self, prefix: &str) -> bool {
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        match self.path().strip_prefix(prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// The same ID as a [`mesh_core::Identity`], the text form endpoints and
    /// [`PeerIdentity`](mesh_core::PeerIdentity) carry. Allocates once.
    pub fn to_identity(&self) -> mesh_core::Identity {
        mesh_core::Identity::new(self.as_str())
            .expect("a valid SPIFFE ID passes mesh-core's outline check")
    }
}

fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    // `path` starts with '/', so the first split item is the empty text before it.
    for segment in path.split('/').skip(1) {
        match segment {
            "" => return Err(SpiffeIdError::EmptySegment),
            "." | ".." => return Err(SpiffeIdError::DotSegment),
            _ => {}
        }
        if let Some(&byte) = segment.as_bytes().iter().find(|&&b| !is_path_byte(b)) {
            return Err(SpiffeIdError::BadPathChar { byte });
        }
    }
    Ok(())
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&mesh_core::Identity> for SpiffeId {
    type Error = SpiffeIdError;

    fn try_from(identity: &mesh_core::Identity) -> Result<Self, Self::Error> {
        Self::new(identity.as_str())
    }
}

impl From<&SpiffeId> for mesh_core::Identity {
    fn from(id: &SpiffeId) -> Self {
        id.to_identity()
    }
}

impl PartialEq for SpiffeId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SpiffeId {}

impl std::hash::Hash for SpiffeId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for SpiffeId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SpiffeId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({:?})", self.as_str())
    }
}

impl AsRef<str> for SpiffeId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}
