//! What a run needs before it measures: HAProxy, nginx and oha installed (installing them when
//! missing), our release binaries built, a high open-file limit, and the versions of everything
//! for the report.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::children::{NOFILE_WANTED, find_in_path};
use crate::procfs;

/// The external tools a run uses.
#[derive(Debug)]
pub(crate) struct Tools {
    /// `haproxy`.
    pub(crate) haproxy: PathBuf,
    /// `nginx`.
    pub(crate) nginx: PathBuf,
    /// `oha`.
    pub(crate) oha: PathBuf,
    /// `valgrind`, when the callgrind part runs.
    pub(crate) valgrind: Option<PathBuf>,
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn run_visible(program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("bench-e2e: running {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed ({status})", args.join(" ")))
    }
}

/// Finds the tools; installs the missing ones (`apt-get` for HAProxy, nginx and, when `valgrind`
/// is asked for, valgrind, as root only; `cargo install oha --locked`) unless `install` is false.
pub(crate) fn ensure_tools(install: bool, cargo: &str, valgrind: bool) -> Result<Tools, String> {
    let missing: Vec<&str> = ["haproxy", "nginx"]
        .into_iter()
        .chain(valgrind.then_some("valgrind"))
        .filter(|p| find_in_path(p).is_none())
        .collect();
    if !missing.is_empty() {
        let command = format!("apt-get update && apt-get install -y {}", missing.join(" "));
        let names = english_list(&missing);
        if !install {
            return Err(format!("{names} missing; install with: {command}"));
        }
        if !is_root() || find_in_path("apt-get").is_none() {
            return Err(format!(
                "{names} missing and this is not a root shell on a Debian-like system; run as root: {command}"
            ));
        }
        run_visible("apt-get", &["update"])?;
        let mut args = vec!["install", "-y", "--no-install-recommends"];
        args.extend(&missing);
        run_visible("apt-get", &args)?;
    }
    let oha = match oha_path() {
        Some(p) => p,
        None if !install => {
            return Err("oha missing; install with: cargo install oha --locked".into());
        }
        None => {
            eprintln!(
                "bench-e2e: oha not found; `cargo install oha --locked` (this takes minutes)"
            );
            run_visible(cargo, &["install", "oha", "--locked"])?;
            oha_path().ok_or("oha installed but not found on PATH nor in ~/.cargo/bin")?
        }
    };
    let find = |p| find_in_path(p).ok_or_else(|| format!("{p} still missing after install"));
    Ok(Tools {
        haproxy: find("haproxy")?,
        nginx: find("nginx")?,
        oha,
        valgrind: valgrind.then(|| find("valgrind")).transpose()?,
    })
}

/// `a`, `a and b`, `a, b and c`.
fn english_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn oha_path() -> Option<PathBuf> {
    find_in_path("oha").or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        Some(home.join("bin").join("oha")).filter(|p| p.is_file())
    })
}

/// The Cargo profile the measured binaries are built with: the workspace's `production` profile
/// (release with fat LTO and one codegen unit), as a deployment builds mesh-sidecar.
pub(crate) const PROFILE: &str = "production";

/// Builds `backend`, `mesh-sidecar` and `hyper-floor` with [`PROFILE`], in the target directory
/// this binary was built in (the `cargo run` that started us built only `bench-e2e`).
pub(crate) fn build_binaries(cargo: &str, workspace: &Path) -> Result<(), String> {
    let manifest = workspace.join("Cargo.toml");
    let manifest = manifest.to_str().ok_or("workspace path is not UTF-8")?;
    run_visible(
        cargo,
        &[
            "build",
            "--profile",
            PROFILE,
            "--manifest-path",
            manifest,
            "-p",
            "mesh-examples",
            "--bin",
            "backend",
            "--bin",
            "mesh-sidecar",
            "--bin",
            "hyper-floor",
        ],
    )
}

/// Raises this process's open-file limit with `prlimit` if it is installed: to
/// [`NOFILE_WANTED`] if allowed (root with `CAP_SYS_RESOURCE`), else the soft limit up to the
/// hard one. The children inherit it (their wrapper's `ulimit` only sets what is allowed).
/// Returns the soft limit in force afterwards.
pub(crate) fn raise_own_nofile() -> u64 {
    if let Some(prlimit) = find_in_path("prlimit") {
        let pid = format!("--pid={}", std::process::id());
        let (_, hard) = procfs::own_nofile();
        for limit in [NOFILE_WANTED, hard.min(NOFILE_WANTED)] {
            let ok = Command::new(&prlimit)
                .arg(&pid)
                .arg(format!("--nofile={limit}:{limit}"))
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
        }
    }
    procfs::own_nofile().0
}

/// The clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 if unknown).
pub(crate) fn clock_ticks() -> f64 {
    first_line("getconf", &["CLK_TCK"])
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The first non-empty line a command prints (on stdout or stderr: `nginx -v` uses stderr).
fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

/// (label, value) rows: machine, kernel and tool versions.
pub(crate) fn environment(tools: &Tools) -> Vec<(String, String)> {
    let unknown = || "unknown".to_owned();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let p = |path: &Path| path.to_string_lossy().into_owned();
    vec![
        (
            "CPU".into(),
            procfs::cpu_model(&cpuinfo).unwrap_or_else(unknown),
        ),
        ("CPUs".into(), cores.to_string()),
        (
            "kernel".into(),
            first_line("uname", &["-sr"]).unwrap_or_else(unknown),
        ),
        (
            "HAProxy".into(),
            first_line(&p(&tools.haproxy), &["-v"]).unwrap_or_else(unknown),
        ),
        (
            "nginx".into(),
            first_line(&p(&tools.nginx), &["-v"]).unwrap_or_else(unknown),
        ),
        (
            "oha".into(),
            first_line(&p(&tools.oha), &["--version"]).unwrap_or_else(unknown),
        ),
        (
            "valgrind".into(),
            tools.valgrind.as_deref().map_or_else(
                || "not used".to_owned(),
                |v| first_line(&p(v), &["--version"]).unwrap_or_else(unknown),
            ),
        ),
        (
            "rustc".into(),
            first_line("rustc", &["-V"]).unwrap_or_else(unknown),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_are_listed_in_english() {
        assert_eq!(english_list(&["nginx"]), "nginx");
        assert_eq!(english_list(&["haproxy", "nginx"]), "haproxy and nginx");
        assert_eq!(
            english_list(&["haproxy", "nginx", "valgrind"]),
            "haproxy, nginx and valgrind"
        );
    }
}
