//! Hot rotation of certificates and trust bundles: [`WorkloadIdentity`], the [`IdentitySource`]
//! trait, [`IdentityWatch`], and the file-based [`FileSource`].
//!
//! A source publishes the whole current [`WorkloadIdentity`] (this workload's SVID and the trust
//! bundles) through a [`tokio::sync::watch`] channel. [`TlsConnector::from_source`](crate::TlsConnector::from_source)
//! and [`TlsAcceptor::from_source`](crate::TlsAcceptor::from_source) read the latest value at
//! the start of every handshake, so:
//!
//! - new handshakes present the new certificate and verify peers against the new bundles, without
//!   a restart and without rebuilding any configuration;
//! - established connections are untouched: a TLS session keeps the keys it negotiated, so rotating
//!   never drops a connection (as in Linkerd and ztunnel, and unlike them the trust bundles rotate
//!   too — linkerd2 #13613). That includes connections from peers whose root was just removed;
//!   [`TlsAcceptor::recheck_connections_on_bundle_change`](crate::TlsAcceptor::recheck_connections_on_bundle_change)
//!   (off by default) closes those gracefully, and
//!   [`TlsConnector::recheck_connections_on_bundle_change`](crate::TlsConnector::recheck_connections_on_bundle_change)
//!   retires the pooled connections to servers whose root was removed;
//! - a bad update never reaches the handshakes: the source validates first and keeps the last good
//!   identity.
//!
//! Every message carries the full state (as the SPIRE Workload API does), so a future Workload API
//! source is one more implementation of [`IdentitySource`].
//!
//! ```
//! use mesh_tls::rotation::{IdentitySource, IdentityWatch, WorkloadIdentity};
//! use mesh_tls::test_ca::TestCa;
//!
//! let ca = TestCa::new("prod.example");
//! let identity = WorkloadIdentity::new(ca.issue("/web").svid(), TestCa::bundles([&ca]));
//! let (publish, watch) = IdentityWatch::channel(identity);
//! assert_eq!(watch.current().svid().id().as_str(), "spiffe://prod.example/web");
//!
//! // A rotation: new handshakes through `watch` see the new SVID at once.
//! let _ = publish.send(WorkloadIdentity::new(ca.issue("/web2").svid(), TestCa::bundles([&ca])).into());
//! assert_eq!(watch.current().svid().id().as_str(), "spiffe://prod.example/web2");
//! ```

mod file;
mod resolver;

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

pub use file::{FileSource, FileSourceConfig, RotationError};
pub(crate) use resolver::CurrentSvid;

use crate::{TrustBundleSet, X509Svid};

/// Everything a workload needs for mTLS at one moment: its own SVID and the bundles it trusts.
/// Cloning is two reference counts.
#[derive(Clone, Debug)]
pub struct WorkloadIdentity {
    svid: X509Svid,
    bundles: Arc<TrustBundleSet>,
}

impl WorkloadIdentity {
    /// Pairs an SVID with the bundles to verify peers against.
    pub fn new(svid: X509Svid, bundles: Arc<TrustBundleSet>) -> Self {
        Self { svid, bundles }
    }

    /// This workload's SVID.
    pub fn svid(&self) -> &X509Svid {
        &self.svid
    }

    /// The trust bundles.
    pub fn bundles(&self) -> &Arc<TrustBundleSet> {
        &self.bundles
    }
}

/// A provider of the current [`WorkloadIdentity`] that may change over time (files on disk, the
/// SPIRE Workload API …).
pub trait IdentitySource {
    /// A handle that always yields the latest good identity.
    fn watch(&self) -> IdentityWatch;
}

/// A read handle on the latest [`WorkloadIdentity`] of a source. Cloning is cheap; reading takes a
/// short read lock and one reference count.
#[derive(Clone)]
pub struct IdentityWatch(watch::Receiver<Arc<WorkloadIdentity>>);

impl IdentityWatch {
    /// A channel for a custom source: publish new identities with the sender; the handle starts at
    /// `initial`. When the sender is dropped, the handle keeps the last identity forever.
    pub fn channel(initial: WorkloadIdentity) -> (watch::Sender<Arc<WorkloadIdentity>>, Self) {
        let (sender, receiver) = watch::channel(Arc::new(initial));
        (sender, Self(receiver))
    }

    /// A handle on an identity that never changes.
    pub fn fixed(identity: WorkloadIdentity) -> Self {
        Self::channel(identity).1
    }

    /// The latest identity.
    pub fn current(&self) -> Arc<WorkloadIdentity> {
        self.0.borrow().clone()
    }

    /// Waits until the source publishes a new identity; `false` once the source is gone.
    pub async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }
}

impl IdentitySource for IdentityWatch {
    fn watch(&self) -> IdentityWatch {
        self.clone()
    }
}

impl fmt::Debug for IdentityWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdentityWatch")
            .field(&self.current().svid().id())
            .finish()
    }
}
