//! The deployable binaries (mesh-sidecar, mesh-gateway, backend, hyper-floor, the demo) are built
//! without tokio's `test-util` feature. With it, every read of tokio's clock takes a lock to ask
//! whether time is paused. Cargo turns a feature on for the whole build, so one normal dependency
//! that asks for it (as `towermesh-sim` does, for its paused clock) is enough to bring it back
//! unnoticed: this test asks `cargo tree` which tokio features this package's normal build
//! resolves, and checks the `mesh-scenario` package's, which does use the paused clock, as the
//! control that the query finds the feature when it is there.

use std::path::Path;
use std::process::Command;

/// The lines of `cargo tree` naming tokio's `test-util` feature in `package`'s normal build
/// (dev-dependencies left out, as in a `cargo build` of its binaries).
fn test_util_lines(package: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            package,
            "-e",
            "features,normal",
            "-i",
            "tokio",
        ])
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("tokio feature \"test-util\""))
        .count()
}

#[test]
fn the_deployable_binaries_are_built_without_tokios_test_clock() {
    assert!(
        test_util_lines("mesh-scenario") > 0,
        "the control failed: mesh-scenario's tree should show tokio's test-util"
    );
    assert_eq!(
        test_util_lines("mesh-examples"),
        0,
        "a normal dependency of mesh-examples turns on tokio's test-util: move what needs it to a \
         package of its own (see mesh-scenario) or to dev-dependencies"
    );
}
