//! FileDiscover records `mesh.discovery.errors` through the meter in its config.
#![cfg(feature = "file")]

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use mesh_balance::discover::{DiscoverError, FileDiscover, FileDiscoverConfig};
use mesh_test::{Attributes, TestMetrics};

/// A fresh per-test directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mesh-balance-{test}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let tmp = self.0.join("incoming");
        let path = self.0.join(file);
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The one attribute of `mesh.discovery.errors` for file discovery.
fn source_file() -> Attributes {
    Attributes::from([("mesh.discovery.source".to_owned(), "file".to_owned())])
}

async fn next_error(discover: &mut FileDiscover) -> DiscoverError {
    let item = tokio::time::timeout(
        Duration::from_secs(3600),
        std::future::poll_fn(|cx| Pin::new(&mut *discover).poll_next(cx)),
    )
    .await
    .expect("the stream produced nothing in an hour")
    .expect("discovery streams never end");
    match item {
        Err(e) => e,
        Ok(change) => panic!("expected an error, got {change:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn broken_file_counts_one_error_per_distinct_failure() {
    let dir = TempDir::new("metrics");
    let path = dir.write("orders.toml", "[[endpoints]]\naddr = \"not an address\"\n");
    let metrics = TestMetrics::new();
    let config = FileDiscoverConfig::default().meter(metrics.meter());
    let mut discover = FileDiscover::with_config(&path, config).unwrap();

    let first = next_error(&mut discover).await;
    assert!(
        matches!(first, DiscoverError::FileInvalid { .. }),
        "{first}"
    );
    let errors = metrics.counter("mesh.discovery.errors", "{error}");
    assert_eq!(errors.labelled(), vec![(source_file(), 1)]);

    // A different broken content is a new failure: the same series goes to 2.
    dir.write(
        "orders.toml",
        "[[endpoints]]\naddr = \"10.0.0.1:80\"\nweight = 0\n",
    );
    next_error(&mut discover).await;
    let errors = metrics.get("mesh.discovery.errors");
    assert_eq!(errors.labelled(), vec![(source_file(), 2)], "one series");
}

#[tokio::test(start_paused = true)]
async fn the_error_series_exists_at_zero_before_the_first_error() {
    let dir = TempDir::new("metrics-zero");
    let path = dir.write("orders.toml", "[[endpoints]]\naddr = \"10.0.0.1:80\"\n");
    let metrics = TestMetrics::new();
    let config = FileDiscoverConfig::default().meter(metrics.meter());
    let _discover = FileDiscover::with_config(&path, config).unwrap();

    let errors = metrics.get("mesh.discovery.errors");
    assert_eq!(errors.labelled(), vec![(source_file(), 0)]);
}
