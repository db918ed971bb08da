//! Child processes (the sidecars and backends): each started in its own process group with its
//! stderr appended to a log file, and always killed — when its [`Proc`] is dropped, when `main`
//! unwinds or returns early ([`KillAllOnDrop`]), and on Ctrl-C or SIGTERM ([`kill_all_on_signal`]).
//!
//! Every child is registered in one process-wide table so that the signal path can reach it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

static LIVE: Mutex<BTreeMap<u32, Child>> = Mutex::new(BTreeMap::new());

/// A running child; killed (SIGKILL to its process group) when dropped.
#[derive(Debug)]
pub(crate) struct Proc {
    pid: u32,
}

impl Proc {
    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        kill(self.pid);
    }
}

/// Starts `program args…` with stdout piped and stderr appended to `log`, and waits (at most
/// `timeout`) for its first stdout line starting with `prefix` (our binaries print a `ready` line
/// naming their listeners). Returns the child and that line.
pub(crate) fn start_ready(
    program: &Path,
    args: &[OsString],
    log: &Path,
    prefix: &str,
    timeout: Duration,
) -> Result<(Proc, String), String> {
    let name = program
        .file_name()
        .map_or_else(|| "child".into(), |n| n.to_string_lossy().into_owned());
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    // Its own process group, killed as a whole.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let out = child.stdout.take().ok_or("stdout was not piped")?;
    let pid = child.id();
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pid, child);
    let proc = Proc { pid };
    let (tx, rx) = mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if line.starts_with(&prefix) {
                let _ = tx.send(line);
                break;
            }
        }
        // Keep draining so the child never blocks on a full pipe.
        for _ in lines {}
    });
    match rx.recv_timeout(timeout) {
        Ok(line) => Ok((proc, line)),
        Err(_) => Err(format!(
            "{name} printed no ready line within {timeout:?}; see {}",
            log.display()
        )),
    }
}

/// The address a `ready` line gives for `key` (`key=<addr>`).
pub(crate) fn ready_addr(line: &str, key: &str) -> Result<std::net::SocketAddr, String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .ok_or_else(|| format!("no {key}= in {line:?}"))?
        .parse()
        .map_err(|e| format!("bad {key}= in {line:?}: {e}"))
}

/// SIGKILLs `pid`'s process group and reaps the child.
fn kill(pid: u32) {
    let child = LIVE.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Kills every child still registered.
pub(crate) fn kill_all() {
    let pids: Vec<u32> = LIVE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .copied()
        .collect();
    for pid in pids {
        kill(pid);
    }
}

/// Kills every child when dropped: `main` holds one, so an early return or a panic cleans up.
#[derive(Debug)]
pub(crate) struct KillAllOnDrop;

impl Drop for KillAllOnDrop {
    fn drop(&mut self) {
        kill_all();
    }
}

/// On Ctrl-C (SIGINT) or SIGTERM: kill every child and exit 130.
pub(crate) fn kill_all_on_signal() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let _ = mesh_examples::admin::shutdown_signal().await;
        });
        eprintln!("\nsoak: interrupted; stopping every child process");
        kill_all();
        std::process::exit(130);
    });
}

/// The directory of this executable, where cargo puts the sibling binaries.
pub(crate) fn bin_dir() -> Result<PathBuf, String> {
    std::env::current_exe()
        .map_err(|e| format!("cannot find this executable: {e}"))?
        .parent()
        .map(Path::to_owned)
        .ok_or_else(|| "no directory of the current executable".into())
}
