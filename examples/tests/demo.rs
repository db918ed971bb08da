//! Runs the `demo` binary for a few seconds and checks the structure of what it prints: a live
//! table every second, traffic answered from both clouds, the failover, the metrics scrape.

use std::process::Command;

fn run_demo(args: &[&str]) -> (bool, String, String) {
    run_demo_logging(args, None)
}

/// Runs the demo with `RUST_LOG` set to `filter`, or unset.
fn run_demo_logging(args: &[&str], filter: Option<&str>) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_demo"));
    command.args(args).env_remove("RUST_LOG");
    if let Some(filter) = filter {
        command.env("RUST_LOG", filter);
    }
    let output = command.output().expect("the demo binary starts");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The share of `cloud`, in percent, on the summary's `zones {when}` line.
fn zone_share(summary: &str, when: &str, cloud: &str) -> f64 {
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("zones {when}")))
        .unwrap_or_else(|| panic!("no `zones {when}` line in:\n{summary}"));
    let after_cloud = line
        .split(cloud)
        .nth(1)
        .unwrap_or_else(|| panic!("no {cloud} in {line:?}"));
    after_cloud
        .split('%')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no share for {cloud} in {line:?}"))
}

#[test]
fn a_short_run_fails_over_to_the_remote_cloud() {
    let (ok, stdout, stderr) = run_demo(&["--duration", "4", "--rate", "150", "--seed", "7"]);
    assert!(ok, "demo failed:\nstdout:\n{stdout}\nstderr:\n{stderr}");

    // One table per second, each with a row per endpoint.
    for second in 1..=4 {
        assert!(
            stdout.contains(&format!("t={second:>3}s  zone in use:")),
            "no table for second {second}:\n{stdout}"
        );
    }
    for name in ["a1", "a2-slow", "a3-flaky", "b1", "b2"] {
        assert!(
            stdout.contains(&format!("        {name} ")),
            "no row for {name}"
        );
    }
    assert!(stdout.contains(">>> t=2s: stopping cloud A's backends"));

    let summary = stdout
        .split("\nsummary:")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    // Before the outage the local cloud took most of the traffic; afterwards the remote one did.
    assert!(zone_share(summary, "before", "cloud-a") > 50.0, "{summary}");
    assert!(zone_share(summary, "after", "cloud-b") > 50.0, "{summary}");
    assert!(summary.contains("failover: yes"), "no failover:\n{summary}");
    assert!(
        summary.contains("metric families"),
        "no metrics scrape:\n{summary}"
    );
    // Logging at `warn` by default: the ejections and breaker changes of the outage (info) do
    // not interleave with the table.
    assert!(!stderr.contains(" INFO "), "{stderr}");
}

#[test]
fn the_demo_logs_through_the_sidecars_subscriber() {
    // At `info`, the outage halfway through is logged on stderr (ejections, breaker changes),
    // one JSON object per line with `--log-format json`; stdout keeps only the table.
    let args = [
        "--duration",
        "4",
        "--rate",
        "100",
        "--seed",
        "7",
        "--log-format",
        "json",
    ];
    let (ok, stdout, stderr) = run_demo_logging(&args, Some("info"));
    assert!(ok, "demo failed:\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("\"level\":\"INFO\""))
        .collect();
    assert!(!lines.is_empty(), "no info line on stderr:\n{stderr}");
    assert!(lines.iter().all(|l| l.starts_with('{')), "{stderr}");
    assert!(
        !stdout.contains("\"level\""),
        "log lines on stdout:\n{stdout}"
    );
}

#[test]
fn help_lists_every_option_and_bad_values_are_refused() {
    let (ok, stdout, _) = run_demo(&["--help"]);
    assert!(ok);
    for option in [
        "--duration",
        "--rate",
        "--seed",
        "--metrics-port",
        "--log-format",
        "--help",
    ] {
        assert!(stdout.contains(option), "--help does not mention {option}");
    }
    let (ok, _, stderr) = run_demo(&["--duration", "1"]);
    assert!(!ok);
    assert!(stderr.contains("--duration"), "{stderr}");
    let (ok, _, stderr) = run_demo(&["--bogus", "1"]);
    assert!(!ok);
    assert!(stderr.contains("unknown option --bogus"), "{stderr}");
}
