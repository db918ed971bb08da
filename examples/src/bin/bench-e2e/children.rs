//! Child processes: started pinned to a CPU with a raised open-file limit, waited for with a
//! deadline, and always killed — when their [`Proc`] is dropped, on an error that unwinds `main`,
//! and on Ctrl-C ([`kill_all`] from the signal thread).
//!
//! Every child is registered in one process-wide table so the Ctrl-C path can reach it; a child is
//! killed together with its descendants (nginx's master forks its worker: killing only the master
//! would leave the worker running and holding the port).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::procfs;

/// The open-file limit wanted for this process and every child (10 000 idle connections plus
/// their upstream side, with room). Where the hard limit is lower and cannot be raised, children
/// get the hard limit ([`nofile`]).
pub(crate) const NOFILE_WANTED: u64 = 65_536;

/// The open-file limit children run with: [`NOFILE_WANTED`], or this process's soft limit if
/// lower (set by `setup::raise_own_nofile` as high as allowed).
pub(crate) fn nofile() -> u64 {
    procfs::own_nofile().0.min(NOFILE_WANTED)
}

static LIVE: Mutex<BTreeMap<u32, Child>> = Mutex::new(BTreeMap::new());

/// A running child; killed with its descendants when dropped.
#[derive(Debug)]
pub(crate) struct Proc {
    pid: u32,
    log: PathBuf,
}

impl Proc {
    /// The child's process id (the program itself: the wrappers `exec` it).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status if the child has ended.
    pub(crate) fn exited(&self) -> Option<ExitStatus> {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.get_mut(&self.pid)
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The last lines of the child's stderr log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        kill(self.pid);
    }
}

/// How to start one child.
#[derive(Debug)]
pub(crate) struct Spawn {
    name: String,
    program: OsString,
    args: Vec<OsString>,
    cpu: Option<u32>,
    env: Vec<(String, String)>,
    log_dir: PathBuf,
}

impl Spawn {
    /// `program` with no arguments, logging its stderr into `log_dir/<name>.log`.
    pub(crate) fn new(name: &str, program: impl Into<OsString>, log_dir: &Path) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            cpu: None,
            env: Vec::new(),
            log_dir: log_dir.to_owned(),
        }
    }

    /// Adds arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Pins the child to one CPU with `taskset`.
    pub(crate) fn cpu(mut self, cpu: u32) -> Self {
        self.cpu = Some(cpu);
        self
    }

    /// Sets an environment variable.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// `sh -c 'ulimit -n N; exec "$@"' sh [taskset -c CPU] program args…`: every wrapper `exec`s,
    /// so the pid we get is the program's own.
    fn command(&self, stdout: Stdio) -> std::io::Result<(Command, PathBuf)> {
        let log = self.log_dir.join(format!("{}.log", self.name));
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {} 2>/dev/null; exec \"$@\"", nofile()))
            .arg("sh");
        if let Some(cpu) = self.cpu {
            cmd.args(["taskset", "-c", &cpu.to_string()]);
        }
        cmd.arg(&self.program).args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(stdout)
            .stderr(std::fs::File::create(&log)?);
        // Its own process group, killed as a whole: a worker that a master forks while the tree
        // is being listed (nginx respawns them) cannot be left behind.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        Ok((cmd, log))
    }

    fn start(&self, stdout: Stdio) -> Result<(Proc, Option<std::process::ChildStdout>), String> {
        let (mut cmd, log) = self
            .command(stdout)
            .map_err(|e| format!("{}: cannot create its log: {e}", self.name))?;
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.name))?;
        let out = child.stdout.take();
        let pid = child.id();
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid, child);
        Ok((Proc { pid, log }, out))
    }

    /// Starts the child and waits (at most `timeout`) for the first stdout line that starts with
    /// `prefix` (our binaries print a `ready` line naming their listeners).
    pub(crate) fn ready_line(
        &self,
        prefix: &str,
        timeout: Duration,
    ) -> Result<(Proc, String), String> {
        let (proc, out) = self.start(Stdio::piped())?;
        let out = out.expect("stdout was piped");
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
                "{} printed no ready line within {timeout:?}; its stderr:\n{}",
                self.name,
                proc.log_tail()
            )),
        }
    }

    /// Starts the child (stdout discarded) and waits (at most `timeout`) until `addr` accepts TCP
    /// connections. `Err(None)` if the child exited first (for example: the port was taken).
    pub(crate) fn listening(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Proc, Option<String>> {
        let (proc, _) = self.start(Stdio::null()).map_err(Some)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = proc.exited() {
                eprintln!(
                    "bench-e2e: {} exited ({status}) before listening: {}",
                    self.name,
                    proc.log_tail()
                );
                return Err(None);
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(proc);
            }
            if Instant::now() > deadline {
                return Err(Some(format!(
                    "{} does not listen on {addr} after {timeout:?}; its stderr:\n{}",
                    self.name,
                    proc.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs the child to completion (at most `timeout`, then it is killed) and returns its stdout.
    pub(crate) fn output(&self, timeout: Duration) -> Result<String, String> {
        let (proc, out) = self.start(Stdio::piped())?;
        let mut out = out.expect("stdout was piped");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = proc.exited() {
                break status;
            }
            if Instant::now() > deadline {
                let tail = proc.log_tail();
                drop(proc);
                return Err(format!(
                    "{} ran past {timeout:?} and was killed; stderr:\n{tail}",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = reader.join().unwrap_or_default();
        if !status.success() {
            return Err(format!(
                "{} failed ({status}); stderr:\n{}",
                self.name,
                proc.log_tail()
            ));
        }
        Ok(text)
    }
}

/// Kills `pid` and its descendants and reaps it.
fn kill(pid: u32) {
    let tree = procfs::process_tree(pid);
    let child = LIVE.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
    // The child leads its own process group (see `command`): kill the group, then any
    // descendant that left it.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
    let others: Vec<String> = tree.iter().skip(1).map(u32::to_string).collect();
    if !others.is_empty() {
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(&others)
            .stderr(Stdio::null())
            .status();
    }
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Kills every child still registered (the Ctrl-C and error paths).
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
        eprintln!("\nbench-e2e: interrupted; stopping every child process");
        kill_all();
        std::process::exit(130);
    });
}

/// The full path of `program` if it is on `PATH`.
pub(crate) fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
