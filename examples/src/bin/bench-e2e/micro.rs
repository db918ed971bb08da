//! The crates' microbenchmarks (divan), run with `cargo bench` and reported verbatim.

use std::path::Path;
use std::time::Duration;

use crate::children;

/// The benches reported: (package, bench target, extra cargo arguments). Package names are the
/// published ones (`towermesh-*`), not the folder names.
const BENCHES: [(&str, &str, &[&str]); 5] = [
    ("towermesh-balance", "balancer", &[]),
    ("towermesh-retry", "retry", &[]),
    (
        "towermesh-tls",
        "handshake",
        &["--features", "towermesh-tls/test-ca"],
    ),
    ("towermesh", "client_stack", &[]),
    ("mesh-examples", "allocs", &[]),
];

/// One bench's output table.
#[derive(Debug)]
pub(crate) struct MicroResult {
    /// `package/bench`.
    pub(crate) name: String,
    /// divan's table, or why it is missing.
    pub(crate) output: String,
}

/// Runs every bench (compiling them first: several minutes on a small machine).
pub(crate) fn run(cargo: &str, workspace: &Path, work: &Path) -> Vec<MicroResult> {
    let manifest = workspace.join("Cargo.toml");
    BENCHES
        .iter()
        .map(|(package, bench, extra)| {
            eprintln!("bench-e2e: cargo bench -p {package} --bench {bench}");
            let spawn = children::spawn(&format!("cargo-bench-{bench}"), cargo, work)
                .args(["bench", "--manifest-path"])
                .args([manifest.as_os_str()])
                .args(["-p", package, "--bench", bench])
                .args(extra.iter().copied());
            let output = match spawn.output(Duration::from_secs(40 * 60)) {
                Ok(text) => table_only(&text),
                Err(e) => format!("(failed: {e})"),
            };
            MicroResult {
                name: format!("{package}/{bench}"),
                output,
            }
        })
        .collect()
}

/// divan's output without trailing blank lines (it prints the timer precision, then the table).
pub(crate) fn table_only(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::BENCHES;

    /// `(package name, bench names, feature names)` of every package of the workspace.
    fn workspace_benches() -> Vec<(String, Vec<String>, Vec<String>)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&root).unwrap() {
            let Ok(text) = std::fs::read_to_string(entry.unwrap().path().join("Cargo.toml")) else {
                continue;
            };
            let manifest: toml::Table = toml::from_str(&text).unwrap();
            let Some(name) = manifest
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
            else {
                continue;
            };
            let benches = manifest
                .get("bench")
                .and_then(|b| b.as_array())
                .map(|b| {
                    b.iter()
                        .filter_map(|b| Some(b.get("name")?.as_str()?.to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let features = manifest
                .get("features")
                .and_then(|f| f.as_table())
                .map(|f| f.keys().cloned().collect())
                .unwrap_or_default();
            found.push((name.to_owned(), benches, features));
        }
        found
    }

    #[test]
    fn every_bench_names_a_package_bench_and_feature_of_the_workspace() {
        let workspace = workspace_benches();
        for (package, bench, extra) in BENCHES {
            let Some((_, benches, features)) = workspace.iter().find(|(name, ..)| name == package)
            else {
                panic!("no package {package} in the workspace");
            };
            assert!(
                benches.iter().any(|b| b == bench),
                "{package} has no bench {bench}"
            );
            for feature in extra.iter().filter(|a| a.contains('/')) {
                let (owner, feature) = feature.split_once('/').unwrap();
                assert_eq!(owner, package, "{feature}");
                assert!(
                    features.iter().any(|f| f == feature),
                    "{package}: {feature}"
                );
            }
        }
    }

    #[test]
    fn output_is_kept_verbatim_but_trimmed() {
        let text = "Timer precision: 10 ns\nbalancer   fastest  \n├─ a   1 ns\n\n\n";
        assert_eq!(
            super::table_only(text),
            "Timer precision: 10 ns\nbalancer   fastest\n├─ a   1 ns"
        );
    }
}
