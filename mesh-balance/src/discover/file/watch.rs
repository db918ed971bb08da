//! Deciding, once per interval, whether the endpoint file changed, and reading it if so.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use mesh_core::Endpoint;

use super::FileFormat;
use crate::discover::DiscoverError;

/// Files larger than this are rejected unread: an endpoint list is kilobytes, and a bound keeps a
/// mistaken path (a log file, a disk image) from being loaded into memory.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A file modified this recently may be modified again within the same timestamp tick without
/// its (mtime, length) changing (coarse file-system clocks, same-length edits). Such a file is
/// read again on the next check even if its metadata looks unchanged — the "racily clean" rule
/// git applies to its index.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// What one check found.
#[derive(Debug)]
pub(crate) enum Check {
    /// Nothing new since the last check (including: still broken in the same way).
    Unchanged,
    /// The file changed and is valid.
    Snapshot(Vec<Endpoint>),
    /// The file changed and is broken (or vanished).
    Failed(DiscoverError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Missing(io::ErrorKind),
    Present {
        modified: Option<SystemTime>,
        len: u64,
    },
}

/// What the watcher remembers between checks.
#[derive(Debug)]
pub(crate) struct FileWatch {
    path: PathBuf,
    format: FileFormat,
    seen: Option<Seen>,
    /// Hash of the last content that was parsed, good or bad: identical content is not parsed or
    /// reported twice. 64-bit, so a collision (probability about 2⁻⁶⁴ per edit) would skip an
    /// update until the next one.
    content_hash: Option<u64>,
    racy: bool,
}

impl FileWatch {
    pub(crate) fn new(path: PathBuf, format: FileFormat) -> Self {
        Self {
            path,
            format,
            seen: None,
            content_hash: None,
            racy: false,
        }
    }

    /// Stats the file; reads, hashes and parses it only when its metadata changed (or it was
    /// racily fresh last time).
    pub(crate) async fn check(&mut self) -> Check {
        let meta = match tokio::fs::metadata(&self.path).await {
            Ok(meta) => meta,
            Err(e) => {
                let seen = Some(Seen::Missing(e.kind()));
                if self.seen == seen {
                    return Check::Unchanged;
                }
                self.seen = seen;
                self.content_hash = None;
                return Check::Failed(DiscoverError::file_read(&self.path, e));
            }
        };
        let modified = meta.modified().ok();
        let seen = Some(Seen::Present {
            modified,
            len: meta.len(),
        });
        if self.seen == seen && !self.racy {
            return Check::Unchanged;
        }
        self.seen = seen;
        if meta.len() > MAX_FILE_BYTES {
            self.content_hash = None;
            return Check::Failed(DiscoverError::file_read(
                &self.path,
                format_args!(
                    "{} bytes is over the {MAX_FILE_BYTES}-byte limit",
                    meta.len()
                ),
            ));
        }
        let bytes = match tokio::fs::read(&self.path).await {
            Ok(bytes) => bytes,
            Err(e) => {
                self.content_hash = None;
                return Check::Failed(DiscoverError::file_read(&self.path, e));
            }
        };
        self.racy = match modified {
            // A timestamp in the future (clock skew) is treated as fresh too.
            Some(at) => SystemTime::now()
                .duration_since(at)
                .map_or(true, |age| age < RACY_WINDOW),
            None => true,
        };
        let hash = crate::hash::hash_bytes(&bytes);
        if self.content_hash == Some(hash) {
            return Check::Unchanged;
        }
        self.content_hash = Some(hash);
        match self.format.parse(&self.path, &bytes) {
            Ok(endpoints) => Check::Snapshot(endpoints),
            Err(e) => Check::Failed(e),
        }
    }
}
