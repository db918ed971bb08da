//! [`FileSource`]: SVID and trust bundles from PEM files, reloaded when they change.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter};
use tokio::sync::watch;

use super::{IdentitySource, IdentityWatch, WorkloadIdentity};
use crate::verify::leaf::validity;
use crate::{BundleError, SpiffeId, SvidLoadError, TrustBundleSet, TrustDomain, X509Svid};

/// Where a [`FileSource`] reads from, and how often.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FileSourceConfig {
    /// PEM file with the certificate chain, leaf first.
    pub(crate) cert_chain: PathBuf,
    /// PEM file with the leaf's private key.
    pub(crate) private_key: PathBuf,
    /// One PEM bundle file per trust domain.
    pub(crate) bundles: Vec<(TrustDomain, PathBuf)>,
    /// This workload's ID: a new certificate with another ID is refused. Default: the ID of the
    /// first certificate loaded.
    pub(crate) local_id: Option<SpiffeId>,
    /// How often [`FileSource::run`] checks the files. Default 5 s: SVIDs are renewed well before
    /// they expire (Linkerd at 70 % of the lifetime, ztunnel and SPIRE at 50 %), so
    /// seconds of delay do not matter, and reading three small files that often costs nothing.
    pub(crate) poll_interval: Duration,
    /// Where the update counter is recorded. Default `opentelemetry::global::meter("mesh-tls")`.
    pub(crate) meter: Option<Meter>,
}

impl FileSourceConfig {
    /// Reads the chain from `cert_chain` and the key from `private_key`; add bundles with
    /// [`bundle`](Self::bundle).
    pub fn new(cert_chain: impl Into<PathBuf>, private_key: impl Into<PathBuf>) -> Self {
        Self {
            cert_chain: cert_chain.into(),
            private_key: private_key.into(),
            bundles: Vec::new(),
            local_id: None,
            poll_interval: Duration::from_secs(5),
            meter: None,
        }
    }

    /// Adds the bundle file of `trust_domain`.
    pub fn bundle(mut self, trust_domain: TrustDomain, path: impl Into<PathBuf>) -> Self {
        self.bundles.push((trust_domain, path.into()));
        self
    }

    /// This workload's ID: a new certificate with another ID is refused. Default: the ID of the
    /// first certificate loaded.
    pub fn local_id(mut self, id: SpiffeId) -> Self {
        self.local_id = Some(id);
        self
    }

    /// How often [`FileSource::run`] checks the files. Default 5 s: SVIDs are renewed well before
    /// they expire (Linkerd at 70 % of the lifetime, ztunnel and SPIRE at 50 %), so
    /// seconds of delay do not matter, and reading three small files that often costs nothing.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Where the update counter is recorded. Default `opentelemetry::global::meter("mesh-tls")`.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }
}

/// Why new files were refused; the last good identity stays in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The chain or key is unusable (bad PEM, no SPIFFE ID, key not matching the leaf).
    #[error("unusable SVID: {0}")]
    Svid(#[from] SvidLoadError),
    /// The new certificate carries another ID than this workload's.
    #[error("the new certificate is for {found}, not for {expected}")]
    IdChanged {
        /// The configured (or first) local ID.
        expected: SpiffeId,
        /// The ID in the new certificate.
        found: SpiffeId,
    },
    /// The new certificate has already expired.
    #[error("the new certificate expired")]
    Expired,
    /// The new certificate is not valid yet.
    #[error("the new certificate is not valid yet")]
    NotYetValid,
    /// A bundle file is unusable.
    #[error("unusable trust bundle: {0}")]
    Bundle(#[from] BundleError),
}

impl RotationError {
    /// Every label [`reason`](Self::reason) returns (keep the two in step).
    const REASONS: [&'static str; 6] = [
        "read",
        "svid",
        "id_changed",
        "expired",
        "not_yet_valid",
        "bundle",
    ];

    /// The file the refusal is about, for the log line: the unreadable file, the bundle of the
    /// refused trust domain, or else the certificate chain.
    fn file(&self, config: &FileSourceConfig) -> String {
        let bundle_domain = match self {
            RotationError::Read { path, .. } => return path.display().to_string(),
            RotationError::Bundle(
                BundleError::Empty { trust_domain }
                | BundleError::BadRoot { trust_domain, .. }
                | BundleError::Pem { trust_domain, .. },
            ) => Some(trust_domain),
            _ => None,
        };
        let bundle = bundle_domain.and_then(|domain| {
            config
                .bundles
                .iter()
                .find(|(d, _)| d == domain)
                .map(|(_, path)| path)
        });
        match (self, bundle) {
            (_, Some(path)) => path.display().to_string(),
            (RotationError::Bundle(_), None) => "trust bundles".to_owned(),
            _ => config.cert_chain.display().to_string(),
        }
    }

    /// A short label for metrics.
    fn reason(&self) -> &'static str {
        match self {
            RotationError::Read { .. } => "read",
            RotationError::Svid(_) => "svid",
            RotationError::IdChanged { .. } => "id_changed",
            RotationError::Expired => "expired",
            RotationError::NotYetValid => "not_yet_valid",
            RotationError::Bundle(_) => "bundle",
        }
    }
}

/// An [`IdentitySource`] reading PEM files: the certificate chain, the private key, and one bundle
/// file per trust domain.
///
/// [`reload`](Self::reload) reads every file; when any changed, it validates the whole set (PEM,
/// key matching the leaf, the same local ID, the leaf valid now, every bundle usable) and publishes
/// it, or refuses it with a [`RotationError`], a `warn` log line and a count in the
/// `mesh.tls.identity.updates` counter (attributes `outcome` = `applied` / `rejected` and `reason`),
/// keeping the last good identity. The same bad contents are reported once, not at every poll —
/// except a certificate that is not valid yet (a CA clock running ahead of ours), which is checked
/// again at every poll and applied as soon as its validity starts.
/// [`run`](Self::run) calls it every [`poll_interval`](FileSourceConfig::poll_interval).
///
/// Write new files atomically (write elsewhere, then rename); a poll that sees a new certificate
/// with the old key refuses it and the next poll picks up the pair.
pub struct FileSource {
    config: FileSourceConfig,
    sender: watch::Sender<Arc<WorkloadIdentity>>,
    local_id: SpiffeId,
    /// The file contents last looked at, applied or refused.
    last_seen: Mutex<Vec<Vec<u8>>>,
    updates: Counter<u64>,
}

impl FileSource {
    /// Reads the files once; fails if they do not make a valid identity.
    pub async fn load(config: FileSourceConfig) -> Result<Self, RotationError> {
        let contents = read_all(&config).await?;
        let identity = build(&config, &contents, config.local_id.as_ref())?;
        let meter = config
            .meter
            .clone()
            .unwrap_or_else(|| opentelemetry::global::meter("mesh-tls"));
        let updates = meter
            .u64_counter("mesh.tls.identity.updates")
            .with_description("Changes of the SVID or trust bundle files, applied or rejected")
            .build();
        // Every series exists from the start, at 0: Prometheus' `increase()` cannot see the step
        // to a series' first sample, so the first refused update would otherwise go uncounted.
        updates.add(0, &[KeyValue::new("outcome", "applied")]);
        for reason in RotationError::REASONS {
            let attributes = [
                KeyValue::new("outcome", "rejected"),
                KeyValue::new("reason", reason),
            ];
            updates.add(0, &attributes);
        }
        Ok(Self {
            local_id: identity.svid().id().clone(),
            sender: watch::channel(Arc::new(identity)).0,
            last_seen: Mutex::new(contents),
            updates,
            config,
        })
    }

    /// Checks the files once. `Ok(true)`: a new identity was applied; `Ok(false)`: nothing changed
    /// since the last look; `Err`: the new contents were refused and the last good identity stays.
    pub async fn reload(&self) -> Result<bool, RotationError> {
        let contents = match read_all(&self.config).await {
            Ok(contents) => contents,
            Err(error) => return Err(self.reject(error)),
        };
        let changed;
        {
            let mut last = self
                .last_seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *last == contents {
                return Ok(false);
            }
            changed = changed_files(&self.config, &last, &contents);
            last.clone_from(&contents);
        }
        match build(&self.config, &contents, Some(&self.local_id)) {
            Ok(identity) => {
                self.sender.send_replace(Arc::new(identity));
                self.updates.add(1, &[KeyValue::new("outcome", "applied")]);
                tracing::info!(id = %self.local_id, file = %changed, "applied a new SVID and trust bundles");
                Ok(true)
            }
            Err(error) => {
                if matches!(error, RotationError::NotYetValid) {
                    // Unchanged files become valid with time alone: forget them so the next poll
                    // checks them again instead of skipping them as already refused.
                    self.last_seen
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clear();
                }
                Err(self.reject(error))
            }
        }
    }

    fn reject(&self, error: RotationError) -> RotationError {
        self.updates.add(
            1,
            &[
                KeyValue::new("outcome", "rejected"),
                KeyValue::new("reason", error.reason()),
            ],
        );
        let file = error.file(&self.config);
        tracing::warn!(%error, reason = error.reason(), file = %file, id = %self.local_id, "refused new identity files; keeping the last good ones");
        error
    }

    /// Polls the files forever, every [`poll_interval`](FileSourceConfig::poll_interval). Spawn it;
    /// drop (abort) the task to stop.
    pub async fn run(&self) {
        let mut ticks = tokio::time::interval(self.config.poll_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            // Errors are logged and counted by `reload`.
            let _ = self.reload().await;
        }
    }

    /// The identity in force.
    pub fn current(&self) -> Arc<WorkloadIdentity> {
        self.sender.borrow().clone()
    }
}

impl IdentitySource for FileSource {
    fn watch(&self) -> IdentityWatch {
        IdentityWatch(self.sender.subscribe())
    }
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSource")
            .field("config", &self.config)
            .field("local_id", &self.local_id)
            .finish_non_exhaustive()
    }
}

/// The paths of the files in the order [`read_all`] reads them.
fn paths(config: &FileSourceConfig) -> impl Iterator<Item = &Path> {
    [config.cert_chain.as_path(), config.private_key.as_path()]
        .into_iter()
        .chain(config.bundles.iter().map(|(_, path)| path.as_path()))
}

/// The files whose contents differ between `old` and `new`, comma-separated, for the log line.
fn changed_files(config: &FileSourceConfig, old: &[Vec<u8>], new: &[Vec<u8>]) -> String {
    let changed: Vec<String> = paths(config)
        .enumerate()
        .filter(|(i, _)| old.get(*i) != new.get(*i))
        .map(|(_, path)| path.display().to_string())
        .collect();
    changed.join(", ")
}

/// Reads the chain, the key and the bundles, in that order.
async fn read_all(config: &FileSourceConfig) -> Result<Vec<Vec<u8>>, RotationError> {
    let mut contents = Vec::with_capacity(2 + config.bundles.len());
    for path in paths(config) {
        let data = tokio::fs::read(path)
            .await
            .map_err(|source| RotationError::Read {
                path: path.to_owned(),
                source,
            })?;
        contents.push(data);
    }
    Ok(contents)
}

fn build(
    config: &FileSourceConfig,
    contents: &[Vec<u8>],
    local_id: Option<&SpiffeId>,
) -> Result<WorkloadIdentity, RotationError> {
    let svid = X509Svid::from_pem(&contents[0], &contents[1], &crate::crypto_provider())?;
    if let Some(expected) = local_id
        && expected != svid.id()
    {
        return Err(RotationError::IdChanged {
            expected: expected.clone(),
            found: svid.id().clone(),
        });
    }
    let (not_before, not_after) = validity(&svid.chain()[0]).map_err(SvidLoadError::Id)?;
    let now = SystemTime::now();
    if now > not_after {
        return Err(RotationError::Expired);
    }
    if now < not_before {
        return Err(RotationError::NotYetValid);
    }
    let mut bundles = TrustBundleSet::new();
    for ((trust_domain, _), pem) in config.bundles.iter().zip(&contents[2..]) {
        bundles.insert_pem(trust_domain.clone(), pem)?;
    }
    Ok(WorkloadIdentity::new(svid, Arc::new(bundles)))
}
