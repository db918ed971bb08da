//! The `callgrind` part: instructions and simulated cache misses per proxied request, for
//! mesh-sidecar and hyper-floor, counted by valgrind's callgrind rather than timed.
//!
//! Wall time and CPU time on a shared machine move by tens of percent between runs of the same
//! binary; callgrind's counts move by a fraction of a percent, so this is the figure to compare
//! two builds by, and the one that says what the CPU ratio is made of.
//!
//! How, per proxy: a fresh backend (not under valgrind) and the proxy under
//! `valgrind --tool=callgrind --cache-sim=yes`; [`WARM_UP`] requests, the counters zeroed
//! (`callgrind_control -z`), [`MEASURED`] requests, the counters dumped (`callgrind_control -d`).
//! The requests are sequential `GET /` with `Host: backend` over [`CONNECTIONS`] keep-alive
//! connections taken in turn, so every request is measured alone, with its own wake-ups. The
//! figures are the dump's totals (the whole proxy process, every thread) divided by
//! [`MEASURED`].
//!
//! The cycle estimate is callgrind's own weighting: instructions + 10 × L1 misses + 100 ×
//! last-level misses. The simulated machine has the host's L1 caches as valgrind reads them
//! (32 KiB each on the machines measured so far); it models no prefetching and no out-of-order
//! execution, so the estimate ranks code, it does not predict times.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::netio;
use crate::targets::{self, Env, Target, Wrapper};

/// Requests before the counters are zeroed: connections made, pools and caches filled.
pub(crate) const WARM_UP: usize = 500;
/// Requests counted.
pub(crate) const MEASURED: usize = 5_000;
/// Keep-alive connections the requests take in turn.
pub(crate) const CONNECTIONS: usize = 4;
/// How long a proxy under valgrind may take to start (valgrind translates its code first).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long to wait for callgrind's dump file once asked for it.
const DUMP_TIMEOUT: Duration = Duration::from_secs(120);

/// The events of a `--cache-sim=yes` run, in callgrind's order and names.
pub(crate) const EVENTS: [&str; 9] = [
    "Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw",
];

/// One proxy's counts per request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CallgrindRun {
    /// Which proxy.
    pub(crate) target: Target,
    /// Each of [`EVENTS`] per request.
    pub(crate) per_request: [f64; 9],
}

impl CallgrindRun {
    /// One event per request, by its callgrind name.
    pub(crate) fn event(&self, name: &str) -> f64 {
        EVENTS
            .iter()
            .position(|e| *e == name)
            .map_or(f64::NAN, |i| self.per_request[i])
    }

    /// callgrind's cycle estimate per request: Ir + 10 × L1 misses + 100 × last-level misses.
    pub(crate) fn cycle_estimate(&self) -> f64 {
        let e = |n| self.event(n);
        e("Ir")
            + 10.0 * (e("I1mr") + e("D1mr") + e("D1mw"))
            + 100.0 * (e("ILmr") + e("DLmr") + e("DLmw"))
    }
}

/// Measures `target` (mesh-sidecar or hyper-floor).
pub(crate) fn measure(env: &Env, valgrind: &Path, target: Target) -> Result<CallgrindRun, String> {
    let out = env.work.join(format!("callgrind.{target}.out"));
    let _ = std::fs::remove_file(&out);
    let dump = dump_path(&out);
    let _ = std::fs::remove_file(&dump);
    let wrapper = Wrapper {
        program: valgrind.to_owned(),
        args: vec![
            "--tool=callgrind".into(),
            "--cache-sim=yes".into(),
            OsString::from(format!("--callgrind-out-file={}", out.display())),
        ],
        start_timeout: START_TIMEOUT,
    };
    let backend = targets::start_backend(env)?;
    let running = targets::start_ours(env, target, backend.addr, Some(&wrapper))?;
    let pid = running
        .proc
        .as_ref()
        .map(|p| p.pid())
        .ok_or("the proxy has no process")?;
    crate::block_on(netio::sequential_gets(running.plain, WARM_UP, CONNECTIONS))?;
    callgrind_control(valgrind, "-z", pid)?;
    crate::block_on(netio::sequential_gets(running.plain, MEASURED, CONNECTIONS))?;
    callgrind_control(valgrind, "-d", pid)?;
    let text = wait_for_dump(&dump)?;
    drop(running);
    drop(backend);
    let totals = parse_totals(&text).ok_or_else(|| {
        format!(
            "{}: no `events:` and `totals:` lines of a --cache-sim=yes run",
            dump.display()
        )
    })?;
    Ok(CallgrindRun {
        target,
        per_request: totals.map(|t| t as f64 / MEASURED as f64),
    })
}

/// Where `callgrind_control -d` makes callgrind write its first dump.
fn dump_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// `callgrind_control` from valgrind's directory, `flag` (`-z` zero, `-d` dump) for `pid`.
fn callgrind_control(valgrind: &Path, flag: &str, pid: u32) -> Result<(), String> {
    let control = valgrind
        .parent()
        .map(|dir| dir.join("callgrind_control"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("callgrind_control"));
    let output = Command::new(&control)
        .arg(flag)
        .arg(pid.to_string())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", control.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {flag} {pid} failed ({}): {}",
            control.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The dump's text once callgrind has written it whole (its `totals:` line comes last).
fn wait_for_dump(path: &Path) -> Result<String, String> {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.lines().any(|l| l.starts_with("totals:"))
        {
            return Ok(text);
        }
        if start.elapsed() > DUMP_TIMEOUT {
            return Err(format!(
                "callgrind wrote no complete dump to {} within {} s",
                path.display(),
                DUMP_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// [`EVENTS`] from a dump's `events:` and `totals:` lines; `None` unless every one is there.
pub(crate) fn parse_totals(text: &str) -> Option<[u64; 9]> {
    let names: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("events:"))?
        .split_whitespace()
        .collect();
    let values: Vec<u64> = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:"))?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if names.len() != values.len() {
        return None;
    }
    let mut out = [0; 9];
    for (slot, event) in out.iter_mut().zip(EVENTS) {
        let i = names.iter().position(|n| *n == event)?;
        *slot = values[i];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_read_by_event_name() {
        let text = "version: 1\ncreator: callgrind-3.19.0\n\
            events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\n\
            fl=x\nfn=y\n1 2 3\n\
            totals: 1000 200 100 50 10 20 0 1 2\n";
        assert_eq!(
            parse_totals(text),
            Some([1000, 200, 100, 50, 10, 20, 0, 1, 2])
        );
        let run = CallgrindRun {
            target: Target::Sidecar,
            per_request: [1000.0, 200.0, 100.0, 50.0, 10.0, 20.0, 0.0, 1.0, 2.0],
        };
        assert_eq!(run.cycle_estimate(), 1000.0 + 10.0 * 80.0 + 100.0 * 3.0);
    }

    #[test]
    fn a_dump_without_cache_events_or_totals_is_refused() {
        // A run without --cache-sim counts instructions only.
        assert_eq!(parse_totals("events: Ir\ntotals: 1000\n"), None);
        assert_eq!(
            parse_totals("events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\n"),
            None
        );
        assert_eq!(
            parse_totals("events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\ntotals: 1 2\n"),
            None
        );
    }
}
