//! The error a discovery source yields: which source failed and why.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a discovery source could not produce a new endpoint set.
///
/// A source that yields this error **keeps its last good set**: no `Remove` is emitted because of
/// a failure, and the stream goes on (it never ends after an error). The error is also logged with
/// `tracing::warn!` and counted in the `mesh.discovery.errors` metric, so a consumer may simply log
/// and continue; sources that must not yield errors at all (for example under tower's `Balance`,
/// which fails `poll_ready` on a discovery error) can turn error items off in their config.
///
/// `Clone` so a test or a fan-out can keep a copy; the underlying I/O error is shared.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    /// The endpoint file could not be read (missing, unreadable, or too large).
    #[error("endpoint file {}: cannot read: {reason}", path.display())]
    FileRead {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: Arc<str>,
    },
    /// The endpoint file was read but does not describe a valid endpoint list.
    #[error(
        "endpoint file {}{}: {}{reason}",
        path.display(),
        Location(*line, *column),
        FieldPrefix(field.as_deref())
    )]
    FileInvalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem, when the parser knows it.
        line: Option<usize>,
        /// 1-based column of the problem, when the parser knows it.
        column: Option<usize>,
        /// The offending field (for example `endpoints[2].addr`), when known.
        field: Option<Arc<str>>,
        /// What is wrong.
        reason: Arc<str>,
    },
    /// A DNS lookup failed (timeout, refused, server failure, malformed answer).
    #[error("DNS {name}: {reason}")]
    DnsLookup {
        /// The name being resolved.
        name: Arc<str>,
        /// What went wrong.
        reason: Arc<str>,
    },
    /// A DNS target could not be used at all (for example, not a valid domain name).
    #[error("DNS target {target:?}: {reason}")]
    DnsTarget {
        /// The target as given.
        target: Arc<str>,
        /// What is wrong with it.
        reason: Arc<str>,
    },
}

impl DiscoverError {
    /// The short name of the source kind (`"file"` or `"dns"`), as used in the metric attribute.
    pub fn source_kind(&self) -> &'static str {
        match self {
            Self::FileRead { .. } | Self::FileInvalid { .. } => "file",
            Self::DnsLookup { .. } | Self::DnsTarget { .. } => "dns",
        }
    }

    /// The file this error is about, for file-source errors.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::FileRead { path, .. } | Self::FileInvalid { path, .. } => Some(path),
            _ => None,
        }
    }

    #[cfg(feature = "file")]
    pub(crate) fn file_read(path: &Path, reason: impl fmt::Display) -> Self {
        Self::FileRead {
            path: path.to_owned(),
            reason: reason.to_string().into(),
        }
    }

    #[cfg(feature = "dns")]
    pub(crate) fn dns_lookup(name: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Self::DnsLookup {
            name: name.to_string().into(),
            reason: reason.to_string().into(),
        }
    }
}

/// Formats ` (line L, column C)` when known.
struct Location(Option<usize>, Option<usize>);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(line), Some(column)) => write!(f, " (line {line}, column {column})"),
            (Some(line), None) => write!(f, " (line {line})"),
            _ => Ok(()),
        }
    }
}

/// Formats `field: ` when known.
struct FieldPrefix<'a>(Option<&'a str>);

impl fmt::Display for FieldPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(field) => write!(f, "{field}: "),
            None => Ok(()),
        }
    }
}
