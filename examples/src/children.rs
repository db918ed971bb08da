//! Child processes of the benchmark and soak tools (`bench-e2e`, `soak`): the sidecars, backends
//! and load generators they run, each started in its own process group with its stderr in a log
//! file, waited for with a deadline, and always killed — when its [`Proc`] is dropped, when `main`
//! unwinds or returns early ([`KillAllOnDrop`]), and on Ctrl-C or SIGTERM
//! ([`kill_all_on_signal`]).
//!
//! Every child is registered in one process-wide table (these are tools, not library code) so that
//! the signal path can reach it; a child is killed together with its descendants (nginx's master
//! forks its worker: killing only the master would leave the worker running and holding the port).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

static LIVE: Mutex<BTreeMap<u32, Child>> = Mutex::new(BTreeMap::new());

/// A running child; killed with its descendants when dropped.
#[derive(Debug)]
pub struct Proc {
    pid: u32,
    log: PathBuf,
}

impl Proc {
    /// The child's process id (the program itself: the wrappers `exec` it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status if the child has ended.
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.get_mut(&self.pid)
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The last lines of the child's stderr log, for error messages.
    pub fn log_tail(&self) -> String {
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
pub struct Spawn {
    name: String,
    program: OsString,
    args: Vec<OsString>,
    cpu: Option<u32>,
    env: Vec<(String, String)>,
    nofile: Option<u64>,
    append: bool,
    log_dir: PathBuf,
}

impl Spawn {
    /// `program` with no arguments, logging its stderr into `log_dir/<name>.log`.
    pub fn new(name: &str, program: impl Into<OsString>, log_dir: &Path) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            cpu: None,
            env: Vec::new(),
            nofile: None,
            append: false,
            log_dir: log_dir.to_owned(),
        }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Pins the child to one CPU with `taskset`.
    pub fn cpu(mut self, cpu: u32) -> Self {
        self.cpu = Some(cpu);
        self
    }

    /// Runs the child with this open-file limit (`ulimit -n`; default: this process's).
    pub fn nofile(mut self, limit: u64) -> Self {
        self.nofile = Some(limit);
        self
    }

    /// Appends to the log file instead of replacing it (default: replace), so a child started
    /// again under the same name keeps the log of its earlier runs.
    pub fn append_log(mut self, append: bool) -> Self {
        self.append = append;
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// `sh -c 'ulimit -n N; exec "$@"' sh [taskset -c CPU] program args…`, or the program alone
    /// when neither a limit nor a CPU is set: every wrapper `exec`s, so the pid we get is the
    /// program's own.
    fn command(&self, stdout: Stdio) -> std::io::Result<(Command, PathBuf)> {
        let log = self.log_dir.join(format!("{}.log", self.name));
        let mut cmd = if self.nofile.is_none() && self.cpu.is_none() {
            Command::new(&self.program)
        } else {
            let mut sh = Command::new("sh");
            let limit = self
                .nofile
                .map(|n| format!("ulimit -n {n} 2>/dev/null; "))
                .unwrap_or_default();
            sh.arg("-c").arg(format!("{limit}exec \"$@\"")).arg("sh");
            if let Some(cpu) = self.cpu {
                sh.args(["taskset", "-c", &cpu.to_string()]);
            }
            sh.arg(&self.program);
            sh
        };
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.append)
            .truncate(!self.append)
            .open(&log)?;
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
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
    pub fn ready_line(&self, prefix: &str, timeout: Duration) -> Result<(Proc, String), String> {
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
    pub fn listening(&self, addr: SocketAddr, timeout: Duration) -> Result<Proc, Option<String>> {
        let (proc, _) = self.start(Stdio::null()).map_err(Some)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = proc.exited() {
                eprintln!(
                    "{} exited ({status}) before listening: {}",
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
    pub fn output(&self, timeout: Duration) -> Result<String, String> {
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
    let tree = process_tree(pid);
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
pub fn kill_all() {
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
pub struct KillAllOnDrop;

impl Drop for KillAllOnDrop {
    fn drop(&mut self) {
        kill_all();
    }
}

/// On Ctrl-C (SIGINT) or SIGTERM: says `<tool>: interrupted`, kills every child and exits 130.
pub fn kill_all_on_signal(tool: &'static str) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let _ = crate::admin::shutdown_signal().await;
        });
        eprintln!("\n{tool}: interrupted; stopping every child process");
        kill_all();
        std::process::exit(130);
    });
}

/// The address a `ready` line gives for `key` (`key=<addr>`).
///
/// # Errors
///
/// When the line has no `key=`, or its value is not an address.
pub fn ready_addr(line: &str, key: &str) -> Result<SocketAddr, String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .ok_or_else(|| format!("no {key}= in {line:?}"))?
        .parse()
        .map_err(|e| format!("bad {key}= in {line:?}: {e}"))
}

/// The directory of this executable, where cargo puts the sibling binaries.
///
/// # Errors
///
/// When the executable's path cannot be read.
pub fn bin_dir() -> Result<PathBuf, String> {
    std::env::current_exe()
        .map_err(|e| format!("cannot find this executable: {e}"))?
        .parent()
        .map(Path::to_owned)
        .ok_or_else(|| "no directory of the current executable".into())
}

/// The full path of `program` if it is on `PATH` (or in `/usr/sbin`, `/sbin`).
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// `pid` and its live descendants (nginx's workers under its master, for instance), read from
/// `/proc`; just `pid` where `/proc` cannot be read.
pub fn process_tree(pid: u32) -> Vec<u32> {
    tree(pid, &parents())
}

/// `pid` and all its descendants, given every process's parent.
fn tree(pid: u32, parents: &HashMap<u32, u32>) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        let mut children: Vec<u32> = parents
            .iter()
            .filter(|&(_, &p)| p == parent)
            .map(|(&c, _)| c)
            .collect();
        children.sort_unstable();
        out.extend(children);
        i += 1;
    }
    out
}

/// Every live process's parent, read from `/proc`.
fn parents() -> HashMap<u32, u32> {
    let mut map = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return map;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(stat_ppid)
        {
            map.insert(pid, ppid);
        }
    }
    map
}

/// The parent pid, from the text of `/proc/<pid>/stat`: the command name (field 2) is in
/// parentheses and may contain spaces, so fields are counted from the last `)`.
fn stat_ppid(stat: &str) -> Option<u32> {
    let end = stat.rfind(')')?;
    stat[end + 1..].split_whitespace().nth(4 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_holds_descendants_only() {
        let parents = HashMap::from([(2, 1), (3, 2), (4, 2), (5, 1), (6, 3)]);
        assert_eq!(tree(2, &parents), vec![2, 3, 4, 6]);
        assert_eq!(tree(9, &parents), vec![9]);
    }

    #[test]
    fn the_parent_is_read_after_the_command_name() {
        assert_eq!(stat_ppid("42 (a (b) c) S 7 42 42 0"), Some(7));
        assert_eq!(stat_ppid("garbage"), None);
    }

    #[test]
    fn ready_lines_give_addresses() {
        let line = "mesh-sidecar: ready inbound=127.0.0.1:1 outbound=127.0.0.1:2";
        assert_eq!(
            ready_addr(line, "outbound"),
            Ok("127.0.0.1:2".parse().unwrap())
        );
        assert!(ready_addr(line, "admin").is_err());
        assert!(ready_addr("x: ready listen=nope", "listen").is_err());
    }
}
