//! The metric table in `src/metrics.rs` names every `mesh.*` metric and attribute the workspace
//! records: this test reads the other crates' sources and fails on a name the table lacks.

use std::path::{Path, PathBuf};

const TABLE: &str = include_str!("../src/metrics.rs");

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Every string literal `"mesh.<lowercase, digits, _ and .>"` in `text`.
fn mesh_literals(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("\"mesh.") {
        let tail = &rest[at + 1..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'))
            .unwrap_or(tail.len());
        if tail[end..].starts_with('"') {
            found.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    found
}

#[test]
fn every_recorded_mesh_name_is_in_the_table() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in [
        "mesh-core",
        "mesh-balance",
        "mesh-retry",
        "mesh-tls",
        "mesh-observe",
        "mesh-xds",
    ] {
        rust_files(&workspace.join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 10, "sources found: {}", files.len());
    let mut missing = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for name in mesh_literals(&text) {
            if !TABLE.contains(&format!("`{name}`")) {
                missing.push(format!("{name} ({})", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "add to the table in src/metrics.rs: {missing:#?}"
    );
}

#[test]
fn this_crates_names_are_in_the_table() {
    use mesh_observe::metrics::*;
    for name in [
        HTTP_SERVER_REQUEST_DURATION,
        HTTP_CLIENT_REQUEST_DURATION,
        HTTP_SERVER_ACTIVE_REQUESTS,
        HTTP_CLIENT_ACTIVE_REQUESTS,
        TRACE_CONTEXT_REJECTED,
    ] {
        assert!(TABLE.contains(&format!("| `{name}` |")), "{name}");
    }
}

#[test]
fn literal_scanner_finds_names() {
    let text = r#"meter.u64_counter("mesh.a.b_c").x; let s = "mesh.";  "mesh.Upper""#;
    assert_eq!(mesh_literals(text), ["mesh.a.b_c", "mesh."]);
}
