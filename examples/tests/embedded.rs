//! Runs the `embedded-axum` and `embedded-tonic` programs and checks what they print.
//!
//! Both are self-contained (in-process test CA, loopback listeners on port 0) and exit on their
//! own, so each test only waits for the process to finish.

use std::process::{Command, Output};

fn run(bin: &str) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(bin).output().expect("the example starts");
    let stdout = String::from_utf8(stdout).expect("UTF-8 output");
    assert!(
        status.success(),
        "{bin} exited with {status}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&stderr)
    );
    stdout
}

#[test]
fn embedded_axum_allows_web_and_denies_batch() {
    let out = run(env!("CARGO_BIN_EXE_embedded-axum"));
    for line in [
        "web GET /hello -> 200 \"hello from embedded-axum\" (ok)",
        "web GET /whoami -> 200 \"you are spiffe://embedded.example/web\" (ok)",
        "batch GET /hello -> 403",
        "batch GET /whoami -> 403",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains("UNEXPECTED"), "{out}");
}

#[test]
fn embedded_tonic_retries_hide_unavailable() {
    let out = run(env!("CARGO_BIN_EXE_embedded-tonic"));
    let summary = out
        .lines()
        .find(|line| line.contains("calls succeeded"))
        .unwrap_or_else(|| panic!("no summary line in:\n{out}"));
    assert!(summary.contains("20/20 calls succeeded"), "{summary}");
    for i in 0..20 {
        let line = format!("call {i}: hello, caller-{i} (from ");
        assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    }
    // Every UNAVAILABLE answer was retried once: the backends saw exactly one extra request each.
    let numbers: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let [_, _, steady, flaky, unavailable] = numbers[..] else {
        panic!("unexpected summary: {summary}");
    };
    assert_eq!(steady + flaky, 20 + unavailable, "{summary}");
}
