//! File-based rotation: certificate and bundle files swapped under a running acceptor; established
//! connections keep working, new ones see the new material; bad files are refused with a typed
//! error and a metric while the last good identity stays.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mesh_core::server::{Acceptor, ConnectionInfo};
use mesh_test::TestMetrics;
use mesh_tls::rotation::{FileSource, FileSourceConfig, IdentitySource, RotationError};
use mesh_tls::test_ca::{TestCa, TestSvid};
use mesh_tls::{HandshakeError, SvidError, SvidLoadError, TlsAcceptor, TlsConnector, TrustDomain};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::ServiceExt;

/// A scratch directory with the server's identity files.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mesh-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Writes the SVID files (each atomically: write aside, then rename).
    fn write_svid(&self, svid: &TestSvid) {
        self.write("chain.pem", svid.chain_pem().as_bytes());
        self.write("key.pem", svid.key_pem().as_bytes());
    }

    fn write(&self, file: &str, data: &[u8]) {
        let aside = self.path(&format!("{file}.tmp"));
        std::fs::write(&aside, data).unwrap();
        std::fs::rename(aside, self.path(file)).unwrap();
    }

    fn config(&self) -> FileSourceConfig {
        FileSourceConfig::new(self.path("chain.pem"), self.path("key.pem"))
            .bundle(td(), self.path("bundle.pem"))
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn td() -> TrustDomain {
    TrustDomain::new("prod.example").unwrap()
}

/// Accepts connections forever; reports each handshake's outcome and echoes 4-byte messages.
async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    outcomes: mpsc::UnboundedSender<Result<(), HandshakeError>>,
) {
    let local = listener.local_addr().unwrap();
    loop {
        let (tcp, peer) = listener.accept().await.unwrap();
        let accepting = acceptor.accept(tcp, &ConnectionInfo::new(peer, local));
        let outcomes = outcomes.clone();
        tokio::spawn(async move {
            match accepting.await {
                Ok((mut tls, _)) => {
                    let _ = outcomes.send(Ok(()));
                    let mut buf = [0; 4];
                    while tls.read_exact(&mut buf).await.is_ok() {
                        tls.write_all(&buf).await.unwrap();
                    }
                }
                Err(error) => {
                    let _ = outcomes.send(Err(common::handshake_error(error)));
                }
            }
        });
    }
}

async fn echo<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(tls: &mut S) {
    tls.write_all(b"ping").await.unwrap();
    let mut buf = [0; 4];
    tls.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn swap_keeps_live_connections_and_new_ones_see_the_new_material() {
    let old_ca = TestCa::new("prod.example");
    let new_ca = TestCa::new("prod.example");
    let files = Files::new("swap");
    let old_server = old_ca.issue("/server");
    files.write_svid(&old_server);
    files.write("bundle.pem", old_ca.root_pem().as_bytes());
    let source = FileSource::load(files.config()).await.unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, mut outcomes) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(listener, TlsAcceptor::from_source(&source), report));

    // The client trusts both roots of the domain, so it can follow the server across the swap.
    let both_roots: Vec<CertificateDer<'static>> =
        old_ca.roots().into_iter().chain(new_ca.roots()).collect();
    let client_bundles = Arc::new(
        mesh_tls::TrustBundleSet::new()
            .with(td(), both_roots)
            .unwrap(),
    );
    let endpoint = common::endpoint(addr, Some("spiffe://prod.example/server"));
    let old_client = TlsConnector::new(old_ca.issue("/client").svid(), client_bundles.clone());
    let new_client = TlsConnector::new(new_ca.issue("/client").svid(), client_bundles);

    let mut established = old_client.clone().oneshot(endpoint.clone()).await.unwrap();
    echo(&mut established).await;
    outcomes.recv().await.unwrap().unwrap();

    // Rotate the server to the new CA: new certificate, and a bundle with only the new root.
    let new_server = new_ca.issue("/server");
    files.write_svid(&new_server);
    files.write("bundle.pem", new_ca.root_pem().as_bytes());
    assert!(source.reload().await.unwrap());
    assert!(!source.reload().await.unwrap(), "nothing changed since");

    // The established connection is untouched.
    echo(&mut established).await;

    // A new connection gets the new certificate, and a client of the old CA is now refused.
    let mut fresh = new_client.oneshot(endpoint.clone()).await.unwrap();
    echo(&mut fresh).await;
    let presented = fresh.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(presented, new_server.chain()[0]);
    outcomes.recv().await.unwrap().unwrap();

    let mut refused = old_client.oneshot(endpoint).await.unwrap();
    let _ = refused.write_all(b"ping").await;
    let mut buf = [0; 4];
    assert!(refused.read_exact(&mut buf).await.is_err());
    let error = outcomes.recv().await.unwrap().unwrap_err();
    assert!(
        matches!(error.svid_error(), Some(SvidError::UnknownIssuer { .. })),
        "{error:?}"
    );

    echo(&mut established).await;
    server.abort();
}

/// The `mesh.tls.identity.updates` points that counted something, as `(outcome, reason, count)`.
fn updates(metrics: &TestMetrics) -> Vec<(String, String, i64)> {
    let mut points = all_updates(metrics);
    points.retain(|(_, _, count)| *count > 0);
    points
}

/// Every `mesh.tls.identity.updates` point, zeros included.
fn all_updates(metrics: &TestMetrics) -> Vec<(String, String, i64)> {
    let mut points: Vec<_> = metrics
        .get("mesh.tls.identity.updates")
        .points
        .into_iter()
        .map(|point| {
            let get = |key: &str| {
                point
                    .attribute(key)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            };
            (get("outcome"), get("reason"), point.value)
        })
        .collect();
    points.sort();
    points
}

#[tokio::test]
async fn a_certificate_not_yet_valid_is_checked_again_at_every_poll() {
    let ca = TestCa::new("prod.example");
    let files = Files::new("early");
    let good = ca.issue("/server");
    files.write_svid(&good);
    files.write("bundle.pem", ca.root_pem().as_bytes());
    let source = FileSource::load(files.config()).await.unwrap();

    // Issued by a CA whose clock runs ahead: refused now, but the same files become valid with
    // time alone, so they must not be skipped as "already refused".
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    files.write_svid(
        &ca.svid("/server")
            .not_before(now + hour)
            .not_after(now + 2 * hour)
            .build(),
    );
    for _ in 0..2 {
        assert!(matches!(
            source.reload().await.unwrap_err(),
            RotationError::NotYetValid
        ));
    }
    assert_eq!(source.current().svid().chain()[0], good.chain()[0]);
}

#[tokio::test]
async fn update_series_exist_at_zero_before_any_update() {
    let metrics = TestMetrics::new();
    let ca = TestCa::new("prod.example");
    let files = Files::new("zeros");
    files.write_svid(&ca.issue("/server"));
    files.write("bundle.pem", ca.root_pem().as_bytes());
    let _source = FileSource::load(files.config().meter(metrics.meter()))
        .await
        .unwrap();

    let zero = |outcome: &str, reason: &str| (outcome.to_owned(), reason.to_owned(), 0);
    assert_eq!(
        all_updates(&metrics),
        vec![
            zero("applied", ""),
            zero("rejected", "bundle"),
            zero("rejected", "expired"),
            zero("rejected", "id_changed"),
            zero("rejected", "not_yet_valid"),
            zero("rejected", "read"),
            zero("rejected", "svid"),
        ]
    );
}

#[tokio::test]
async fn bad_files_are_refused_and_the_last_good_identity_stays() {
    let metrics = TestMetrics::new();

    let ca = TestCa::new("prod.example");
    let files = Files::new("bad");
    let good = ca.issue("/server");
    files.write_svid(&good);
    files.write("bundle.pem", ca.root_pem().as_bytes());
    let source = FileSource::load(files.config().meter(metrics.meter()))
        .await
        .unwrap();
    let watch = source.watch();

    // Unparseable certificate.
    files.write(
        "chain.pem",
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    );
    let error = source.reload().await.unwrap_err();
    assert!(
        matches!(error, RotationError::Svid(SvidLoadError::Pem { .. })),
        "{error:?}"
    );
    // Reported once: the same bad contents are not refused again at every poll.
    assert!(!source.reload().await.unwrap());

    // A certificate whose key is not the one on disk.
    let other = ca.issue("/server");
    files.write("chain.pem", other.chain_pem().as_bytes());
    let error = source.reload().await.unwrap_err();
    assert!(
        matches!(error, RotationError::Svid(SvidLoadError::Key(_))),
        "{error:?}"
    );

    // Another workload's ID.
    files.write_svid(&ca.issue("/someone-else"));
    let error = source.reload().await.unwrap_err();
    let RotationError::IdChanged { expected, found } = error else {
        panic!("{error:?}");
    };
    assert_eq!(
        (expected.path(), found.path()),
        ("/server", "/someone-else")
    );

    // Expired.
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    files.write_svid(
        &ca.svid("/server")
            .not_before(now - 2 * hour)
            .not_after(now - hour)
            .build(),
    );
    assert!(matches!(
        source.reload().await.unwrap_err(),
        RotationError::Expired
    ));

    // An unusable bundle.
    files.write_svid(&good);
    files.write("bundle.pem", b"");
    assert!(matches!(
        source.reload().await.unwrap_err(),
        RotationError::Bundle(_)
    ));

    // A missing file.
    std::fs::remove_file(files.path("key.pem")).unwrap();
    assert!(matches!(
        source.reload().await.unwrap_err(),
        RotationError::Read { .. }
    ));

    // Through all of it, the first identity stayed in force.
    assert_eq!(watch.current().svid().chain()[0], good.chain()[0]);
    assert_eq!(source.current().bundles().len(), 1);

    // And a good update still goes through.
    let renewed = ca.issue("/server");
    files.write_svid(&renewed);
    files.write("bundle.pem", ca.root_pem().as_bytes());
    assert!(source.reload().await.unwrap());
    assert_eq!(watch.current().svid().chain()[0], renewed.chain()[0]);

    let rejected = |reason: &str| ("rejected".to_owned(), reason.to_owned(), 1);
    assert_eq!(
        updates(&metrics),
        vec![
            ("applied".to_owned(), String::new(), 1),
            rejected("bundle"),
            rejected("expired"),
            rejected("id_changed"),
            rejected("read"),
            (rejected("svid").0, rejected("svid").1, 2),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn run_polls_the_files_and_publishes_changes() {
    let ca = TestCa::new("prod.example");
    let files = Files::new("run");
    files.write_svid(&ca.issue("/server"));
    files.write("bundle.pem", ca.root_pem().as_bytes());
    let source = Arc::new(
        FileSource::load(files.config().poll_interval(Duration::from_secs(5)))
            .await
            .unwrap(),
    );
    let mut watch = source.watch();
    let polling = tokio::spawn({
        let source = source.clone();
        async move { source.run().await }
    });

    let renewed = ca.issue("/server");
    files.write_svid(&renewed);
    let started = tokio::time::Instant::now();
    assert!(watch.changed().await);
    assert_eq!(watch.current().svid().chain()[0], renewed.chain()[0]);
    // Picked up by the first poll, one interval after start.
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    polling.abort();
}
