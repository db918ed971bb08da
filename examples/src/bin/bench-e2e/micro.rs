//! The crates' microbenchmarks (divan), run with `cargo bench` and reported verbatim.

use std::path::Path;
use std::time::Duration;

use crate::children;

/// The benches reported: (package, bench target, extra cargo arguments).
const BENCHES: [(&str, &str, &[&str]); 3] = [
    ("mesh-balance", "balancer", &[]),
    ("mesh-retry", "retry", &[]),
    ("mesh-tls", "handshake", &["--features", "mesh-tls/test-ca"]),
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
    #[test]
    fn output_is_kept_verbatim_but_trimmed() {
        let text = "Timer precision: 10 ns\nbalancer   fastest  \n├─ a   1 ns\n\n\n";
        assert_eq!(
            super::table_only(text),
            "Timer precision: 10 ns\nbalancer   fastest\n├─ a   1 ns"
        );
    }
}
