//! FileDiscover on a paused clock: reload on change, typed errors, last good set kept.
#![cfg(feature = "file")]

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use mesh_balance::discover::{
    DiscoverError, FileDiscover, FileDiscoverConfig, FileFormat, MAX_FILE_BYTES,
};
use mesh_core::{Endpoint, EndpointKey};
use tower::discover::Change;

type Item = Result<Change<EndpointKey, Endpoint>, DiscoverError>;

/// A file in a fresh per-test directory, removed on drop.
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(test: &str, file: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mesh-balance-{test}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        Self { dir, path }
    }

    fn write(&self, text: &str) {
        // Write then rename, as config-management tools do, so a check never sees half a file.
        let tmp = self.dir.join("incoming");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn next(discover: &mut FileDiscover) -> Item {
    // Paused clock: a long timeout costs nothing and only guards against a hang.
    tokio::time::timeout(
        Duration::from_secs(3600),
        std::future::poll_fn(|cx| Pin::new(&mut *discover).poll_next(cx)),
    )
    .await
    .expect("the stream produced nothing in an hour")
    .expect("discovery streams never end")
}

/// Asserts that nothing is yielded for `checks` intervals.
async fn quiet(discover: &mut FileDiscover, checks: u32) {
    let wait = Duration::from_secs(5) * checks + Duration::from_millis(1);
    let polled = tokio::time::timeout(
        wait,
        std::future::poll_fn(|cx| Pin::new(&mut *discover).poll_next(cx)),
    )
    .await;
    assert!(polled.is_err(), "unexpected item: {polled:?}");
}

fn insert(item: Item) -> Endpoint {
    match item {
        Ok(Change::Insert(key, ep)) => {
            assert_eq!(key, ep.key());
            ep
        }
        other => panic!("expected an insert, got {other:?}"),
    }
}

fn removed(item: Item) -> EndpointKey {
    match item {
        Ok(Change::Remove(key)) => key,
        other => panic!("expected a remove, got {other:?}"),
    }
}

fn error(item: Item) -> DiscoverError {
    match item {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

const TWO: &str = r#"
[[endpoints]]
addr = "10.0.0.1:8080"
weight = 2
identity = "spiffe://prod.example/ns/shop/sa/orders"
locality = { region = "eu-west", zone = "eu-west-1a", subzone = "rack-7" }
labels = { version = "v2" }

[[endpoints]]
addr = "[2001:db8::1]:8080"
"#;

#[tokio::test(start_paused = true)]
async fn toml_file_is_loaded_with_every_field() {
    let file = TempFile::new("toml", "orders.toml");
    file.write(TWO);
    let mut discover = FileDiscover::new(&file.path).unwrap();
    let first = insert(next(&mut discover).await);
    assert_eq!(first.addr(), "10.0.0.1:8080".parse().unwrap());
    assert_eq!(first.weight().get(), 2);
    assert_eq!(first.locality().zone(), "eu-west-1a");
    assert_eq!(first.locality().subzone(), "rack-7");
    assert_eq!(
        first.identity().map(|id| id.as_str()),
        Some("spiffe://prod.example/ns/shop/sa/orders")
    );
    assert_eq!(first.label("version"), Some("v2"));
    let second = insert(next(&mut discover).await);
    assert_eq!(second.weight().get(), 1);
    assert_eq!(second.locality().region(), "");
    quiet(&mut discover, 3).await;
}

#[tokio::test(start_paused = true)]
async fn json_file_as_document_or_bare_array() {
    let file = TempFile::new("json", "orders.json");
    file.write(r#"{"endpoints": [{"addr": "10.0.0.1:80", "weight": 3}]}"#);
    let mut discover = FileDiscover::new(&file.path).unwrap();
    assert_eq!(insert(next(&mut discover).await).weight().get(), 3);

    file.write(r#"[{"addr": "10.0.0.1:80", "weight": 3}, {"addr": "10.0.0.2:80"}]"#);
    let added = insert(next(&mut discover).await);
    assert_eq!(added.addr(), "10.0.0.2:80".parse().unwrap());
}

#[tokio::test(start_paused = true)]
async fn changes_are_picked_up_at_the_next_check() {
    let file = TempFile::new("reload", "orders.toml");
    file.write(TWO);
    let mut discover = FileDiscover::new(&file.path).unwrap();
    insert(next(&mut discover).await);
    insert(next(&mut discover).await);

    let start = tokio::time::Instant::now();
    // Same address, new weight: one Insert that replaces it; the v6 endpoint is removed.
    file.write("[[endpoints]]\naddr = \"10.0.0.1:8080\"\nweight = 5\n");
    let changed = insert(next(&mut discover).await);
    assert_eq!(changed.weight().get(), 5);
    assert_eq!(
        removed(next(&mut discover).await).0,
        "[2001:db8::1]:8080".parse().unwrap()
    );
    // Picked up by the first check after the write, i.e. within one default interval.
    assert!(
        start.elapsed() <= Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(discover.endpoints().len(), 1);

    // Rewriting identical content changes nothing.
    file.write("[[endpoints]]\naddr = \"10.0.0.1:8080\"\nweight = 5\n");
    quiet(&mut discover, 3).await;
}

#[tokio::test(start_paused = true)]
async fn broken_file_reports_once_and_keeps_the_last_good_set() {
    let file = TempFile::new("broken", "orders.toml");
    file.write(TWO);
    let mut discover = FileDiscover::new(&file.path).unwrap();
    insert(next(&mut discover).await);
    insert(next(&mut discover).await);

    file.write("[[endpoints]]\naddr = \"10.0.0.1:8080\"\nweight = 0\n");
    let e = error(next(&mut discover).await);
    match &e {
        DiscoverError::FileInvalid {
            path, line, reason, ..
        } => {
            assert_eq!(path, &file.path);
            assert_eq!(*line, Some(3));
            assert!(reason.contains("weight"), "{reason}");
        }
        other => panic!("expected FileInvalid, got {other:?}"),
    }
    assert!(e.to_string().contains("orders.toml (line 3"), "{e}");
    assert_eq!(e.source_kind(), "file");
    // Reported once, not at every check, and nothing is removed.
    quiet(&mut discover, 4).await;
    assert_eq!(discover.endpoints().len(), 2);

    // Fixed: only the real difference is emitted.
    file.write("[[endpoints]]\naddr = \"10.0.0.3:8080\"\n");
    let added = insert(next(&mut discover).await);
    assert_eq!(added.addr(), "10.0.0.3:8080".parse().unwrap());
    let mut gone = [
        removed(next(&mut discover).await),
        removed(next(&mut discover).await),
    ];
    gone.sort();
    assert_eq!(gone[0].0, "10.0.0.1:8080".parse().unwrap());
}

#[tokio::test(start_paused = true)]
async fn each_kind_of_bad_file_is_a_typed_error() {
    let cases: &[(&str, &str, Option<usize>, &str)] = &[
        ("syntax.toml", "[[endpoints]\naddr = 1", Some(1), ""),
        (
            "addr.toml",
            "[[endpoints]]\naddr = \"orders:80\"\n",
            Some(2),
            "addr",
        ),
        (
            "identity.toml",
            "[[endpoints]]\naddr = \"10.0.0.1:80\"\nidentity = \"https://x\"\n",
            Some(3),
            "identity",
        ),
        (
            "unknown.toml",
            "[[endpoints]]\naddr = \"10.0.0.1:80\"\nwieght = 2\n",
            Some(3),
            "wieght",
        ),
        (
            "weight.json",
            "{\"endpoints\": [\n {\"addr\": \"10.0.0.1:80\", \"weight\": 0}]}",
            Some(2),
            "weight",
        ),
    ];
    for (name, text, line, mentions) in cases {
        let file = TempFile::new("bad", name);
        file.write(text);
        let mut discover = FileDiscover::new(&file.path).unwrap();
        let e = error(next(&mut discover).await);
        assert!(e.to_string().contains(name), "{e}");
        match e {
            DiscoverError::FileInvalid {
                line: got, reason, ..
            } => {
                assert_eq!(got, *line, "{name}: {reason}");
                assert!(reason.contains(mentions), "{name}: {reason}");
            }
            other => panic!("{name}: expected FileInvalid, got {other:?}"),
        }
        assert_eq!(discover.endpoints().len(), 0);
    }

    let file = TempFile::new("dup", "dup.toml");
    file.write("[[endpoints]]\naddr = \"10.0.0.1:80\"\n[[endpoints]]\naddr = \"10.0.0.1:80\"\n");
    let mut discover = FileDiscover::new(&file.path).unwrap();
    match error(next(&mut discover).await) {
        DiscoverError::FileInvalid { field, .. } => {
            assert_eq!(field.as_deref(), Some("endpoints[1].addr"));
        }
        other => panic!("expected FileInvalid, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn missing_file_is_reported_then_loaded_when_it_appears() {
    let file = TempFile::new("missing", "later.json");
    let mut discover = FileDiscover::new(&file.path).unwrap();
    let e = error(next(&mut discover).await);
    assert!(matches!(&e, DiscoverError::FileRead { .. }), "{e:?}");
    assert_eq!(e.path(), Some(file.path.as_path()));
    quiet(&mut discover, 2).await;

    file.write(r#"[{"addr": "10.0.0.9:80"}]"#);
    insert(next(&mut discover).await);
    // Deleting it again keeps the set: an error, no removal.
    std::fs::remove_file(&file.path).unwrap();
    assert!(matches!(
        error(next(&mut discover).await),
        DiscoverError::FileRead { .. }
    ));
    assert_eq!(discover.endpoints().len(), 1);
    quiet(&mut discover, 2).await;
}

#[tokio::test(start_paused = true)]
async fn errors_can_stay_out_of_the_stream() {
    let file = TempFile::new("silent", "orders.toml");
    file.write("not toml at all [");
    let config = FileDiscoverConfig::default()
        .yield_errors(false)
        .interval(Duration::from_secs(1));
    let mut discover = FileDiscover::with_config(&file.path, config).unwrap();
    quiet(&mut discover, 1).await;
    file.write("[[endpoints]]\naddr = \"10.0.0.1:80\"\n");
    let start = tokio::time::Instant::now();
    insert(next(&mut discover).await);
    assert!(start.elapsed() <= Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn oversized_file_is_rejected_unread() {
    let file = TempFile::new("big", "big.json");
    let f = std::fs::File::create(&file.path).unwrap();
    f.set_len(MAX_FILE_BYTES + 1).unwrap();
    let mut discover = FileDiscover::new(&file.path).unwrap();
    let e = error(next(&mut discover).await);
    assert!(e.to_string().contains("limit"), "{e}");
}

#[test]
fn format_comes_from_the_extension_or_the_config() {
    assert_eq!(
        FileFormat::from_path(Path::new("a/b.TOML")),
        Some(FileFormat::Toml)
    );
    assert_eq!(
        FileFormat::from_path(Path::new("b.json")),
        Some(FileFormat::Json)
    );
    assert_eq!(FileFormat::from_path(Path::new("b.yaml")), None);
    let e = FileDiscover::new("endpoints.conf").unwrap_err();
    assert!(e.to_string().contains("format"), "{e}");
    let explicit = FileDiscoverConfig::default().format(FileFormat::Json);
    assert!(FileDiscover::with_config("endpoints.conf", explicit).is_ok());
}
