//! Endpoints listed in a TOML or JSON file, re-read when it changes.

mod format;
mod watch;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use mesh_core::{Endpoint, EndpointKey};
use opentelemetry::metrics::Meter;
use tower::discover::Change;

pub use self::format::FileFormat;
pub use self::watch::MAX_FILE_BYTES;
use self::watch::{Check, FileWatch};
use super::report::ErrorReporter;
use super::{DiscoverError, SnapshotDiffer};

/// Settings for [`FileDiscover`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FileDiscoverConfig {
    /// How often the file's metadata is checked. Default 5 s: quick enough for an operator editing
    /// the file by hand, and a `stat` every 5 s costs nothing. Values below 100 ms are raised to
    /// 100 ms, so a zero interval cannot spin the blocking pool.
    pub(crate) interval: Duration,
    /// The syntax; `None` (default) picks it from the extension (`.toml`, `.json`).
    pub(crate) format: Option<FileFormat>,
    /// Whether a broken file also yields an `Err` item (default `true`). Failures are always
    /// logged and counted; turn this off for a consumer that stops on the first error, such as
    /// tower's `Balance`.
    pub(crate) yield_errors: bool,
    /// Where the `mesh.discovery.errors` counter is registered; default
    /// `opentelemetry::global::meter("mesh-balance")`.
    pub(crate) meter: Option<Meter>,
}

impl Default for FileDiscoverConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            format: None,
            yield_errors: true,
            meter: None,
        }
    }
}

impl FileDiscoverConfig {
    /// How often the file's metadata is checked. Default 5 s: quick enough for an operator editing
    /// the file by hand, and a `stat` every 5 s costs nothing. Values below 100 ms are raised to
    /// 100 ms, so a zero interval cannot spin the blocking pool.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The syntax; `None` (default) picks it from the extension (`.toml`, `.json`).
    pub fn format(mut self, format: FileFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Whether a broken file also yields an `Err` item (default `true`). Failures are always
    /// logged and counted; turn this off for a consumer that stops on the first error, such as
    /// tower's `Balance`.
    pub fn yield_errors(mut self, yield_errors: bool) -> Self {
        self.yield_errors = yield_errors;
        self
    }

    /// Where the `mesh.discovery.errors` counter is registered; default
    /// `opentelemetry::global::meter("mesh-balance")`.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }
}

type CheckFuture = Pin<Box<dyn Future<Output = (FileWatch, Check)> + Send + 'static>>;

/// Discovery from a file listing endpoints (see [`FileFormat`]), re-read when it changes.
///
/// The file is read on the first poll, then its modification time and length are checked every
/// [`interval`](FileDiscoverConfig::interval) on the tokio clock; when they change the file is
/// read, and when its content hash changed too it is parsed and diffed against the current set
/// (see [`SnapshotDiffer`]). Polling instead of OS file notifications keeps the crate free of a
/// platform-specific dependency, works the same on every platform and file system (network mounts,
/// Kubernetes ConfigMap symlink swaps, editors that replace the file), and runs on a paused test
/// clock; the cost is up to one interval of delay.
///
/// **A broken file keeps the last good set.** A file that is missing, unreadable, larger than
/// [`MAX_FILE_BYTES`], not valid TOML/JSON, or that holds an invalid entry (bad address, weight 0,
/// identity that is not a SPIFFE ID, unknown key, duplicate address) is rejected as a whole: it is
/// logged with `tracing::warn!`, counted in the `mesh.discovery.errors` counter (attribute
/// `mesh.discovery.source = "file"`), and yielded as `Err(`[`DiscoverError`]`)` naming the file and,
/// when known, the line, column and field — unless
/// [`yield_errors`](FileDiscoverConfig::yield_errors) is off. No `Remove` follows from a failure,
/// and the same broken content is reported once, not at every check. The stream goes on after an
/// error and never ends, so a consumer should log an `Err` item and keep polling (mesh-balance's
/// balancer does).
///
/// File I/O runs through `tokio::fs` (the blocking pool). Each check allocates one boxed future,
/// off the request path.
///
/// ```no_run
/// use std::time::Duration;
/// use mesh_balance::discover::{FileDiscover, FileDiscoverConfig};
///
/// # fn main() -> Result<(), mesh_balance::discover::DiscoverError> {
/// let discover = FileDiscover::with_config(
///     "/etc/mesh/orders.toml",
///     FileDiscoverConfig::default().interval(Duration::from_secs(2)),
/// )?;
/// # drop(discover); Ok(()) }
/// ```
pub struct FileDiscover {
    path: PathBuf,
    watch: Option<FileWatch>,
    checking: Option<CheckFuture>,
    first: bool,
    interval: Duration,
    reporter: ErrorReporter,
    differ: SnapshotDiffer,
    error: Option<DiscoverError>,
}

impl FileDiscover {
    /// Watches `path` with the default settings.
    ///
    /// Fails only when the format cannot be told from the extension; the file itself is first
    /// read when the stream is polled, so a missing file is reported there, not here.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, DiscoverError> {
        Self::with_config(path, FileDiscoverConfig::default())
    }

    /// Watches `path` with `config`.
    pub fn with_config(
        path: impl Into<PathBuf>,
        config: FileDiscoverConfig,
    ) -> Result<Self, DiscoverError> {
        let path = path.into();
        let Some(format) = config.format.or_else(|| FileFormat::from_path(&path)) else {
            return Err(DiscoverError::FileInvalid {
                path,
                line: None,
                column: None,
                field: None,
                reason: "cannot tell the format from the extension (expected .toml or .json); \
                         set FileDiscoverConfig::format"
                    .into(),
            });
        };
        Ok(Self {
            watch: Some(FileWatch::new(path.clone(), format)),
            path,
            checking: None,
            first: true,
            interval: config.interval.max(Duration::from_millis(100)),
            reporter: ErrorReporter::new(config.meter.as_ref(), "file", config.yield_errors),
            differ: SnapshotDiffer::new(),
            error: None,
        })
    }

    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The endpoints of the last good file (after every change already yielded or queued).
    pub fn endpoints(&self) -> impl ExactSizeIterator<Item = &Endpoint> {
        self.differ.endpoints()
    }
}

impl Stream for FileDiscover {
    type Item = Result<Change<EndpointKey, Endpoint>, DiscoverError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(change) = this.differ.next_change() {
                return Poll::Ready(Some(Ok(change)));
            }
            if let Some(error) = this.error.take() {
                return Poll::Ready(Some(Err(error)));
            }
            if this.checking.is_none()
                && let Some(mut watch) = this.watch.take()
            {
                let delay = (!this.first).then_some(this.interval);
                this.first = false;
                this.checking = Some(Box::pin(async move {
                    if let Some(delay) = delay {
                        tokio::time::sleep(delay).await;
                    }
                    let check = watch.check().await;
                    (watch, check)
                }));
            }
            let Some(checking) = this.checking.as_mut() else {
                return Poll::Pending;
            };
            let (watch, check) = std::task::ready!(checking.as_mut().poll(cx));
            this.checking = None;
            this.watch = Some(watch);
            match check {
                Check::Unchanged => {}
                Check::Snapshot(endpoints) => {
                    let changes = this.differ.update(endpoints);
                    tracing::debug!(
                        changes,
                        endpoints = this.differ.len(),
                        "endpoint file reloaded"
                    );
                }
                Check::Failed(error) => this.error = this.reporter.report(error, this.differ.len()),
            }
        }
    }
}

impl fmt::Debug for FileDiscover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileDiscover")
            .field("path", &self.path)
            .field("interval", &self.interval)
            .field("endpoints", &self.differ.len())
            .finish_non_exhaustive()
    }
}
