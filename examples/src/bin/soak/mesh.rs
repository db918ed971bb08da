//! The mesh under test and the changes made to it: backends, sidecars B1..B3 in front of them, a
//! sidecar A that finds B1..B3 through an endpoint file, and the certificate authority whose
//! leaves and bundles are rotated.
//!
//! Identity files are swapped the way Kubernetes updates a mounted secret: each generation's
//! certificate, key and bundle go into a fresh directory, and a symlink naming the live directory
//! is replaced by `rename(2)`. Every file changes at the same instant; a sidecar whose poll reads
//! the certificate just before the swap and the key just after it still sees a mismatched pair,
//! which mesh-tls refuses (counted as a rejected update) and takes whole at the next poll.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_tls::test_ca::TestCa;

use mesh_examples::children::{Proc, Spawn, ready_addr};

/// The trust domain of every workload.
const TRUST_DOMAIN: &str = "soak.test";

/// The longest a child may take to print its ready line (debug builds on a busy machine start
/// slowly).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often sidecar A checks the endpoint file, in milliseconds.
pub(crate) const DISCOVERY_INTERVAL_MS: u64 = 1000;

/// The peer sidecars (and their backends), by index.
pub(crate) const PEERS: usize = 3;

/// A root CA per generation; the bundle trusts the previous, current and next one, so a sidecar
/// that has not yet picked up a rotation and one that has still trust each other's leaves.
struct Pki {
    cas: Vec<TestCa>,
    generation: u32,
}

impl Pki {
    fn new() -> Self {
        Self {
            cas: vec![TestCa::new(TRUST_DOMAIN), TestCa::new(TRUST_DOMAIN)],
            generation: 0,
        }
    }

    /// The CA issuing leaves now: the one before the newest.
    fn current(&self) -> &TestCa {
        &self.cas[self.cas.len() - 2]
    }

    fn bundle_pem(&self) -> String {
        self.cas.iter().map(TestCa::root_pem).collect()
    }

    fn advance(&mut self) {
        self.cas.push(TestCa::new(TRUST_DOMAIN));
        if self.cas.len() > 3 {
            self.cas.remove(0);
        }
        self.generation += 1;
    }
}

/// A running sidecar.
pub(crate) struct Sidecar {
    /// `a`, `b1`, `b2`, `b3`.
    pub(crate) name: String,
    /// The process.
    pub(crate) proc: Proc,
    /// Its outbound listener.
    pub(crate) outbound: SocketAddr,
    /// Its admin listener.
    pub(crate) admin: SocketAddr,
    inbound: SocketAddr,
}

struct Backend {
    name: String,
    addr: SocketAddr,
    proc: Option<Proc>,
}

/// Everything started, and what the schedule changes.
pub(crate) struct Mesh {
    work: PathBuf,
    bin: PathBuf,
    seed: u64,
    pki: Pki,
    backends: Vec<Backend>,
    /// A first, then B1..B3.
    pub(crate) sidecars: Vec<Sidecar>,
    /// Backend restarts that failed (the port could not be bound again, or no ready line).
    pub(crate) restart_failures: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Writes `text` to `path` through a temporary file and a rename.
fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

impl Mesh {
    /// Starts the backends, B1..B3 and A, with the binaries in `bin` and files under `work`.
    pub(crate) fn start(bin: &Path, work: &Path, seed: u64) -> Result<Self, String> {
        for dir in ["gen", "id", "logs"] {
            std::fs::create_dir_all(work.join(dir)).map_err(io(work))?;
        }
        let mut mesh = Self {
            work: work.to_owned(),
            bin: bin.to_owned(),
            seed,
            pki: Pki::new(),
            backends: Vec::new(),
            sidecars: Vec::new(),
            restart_failures: 0,
        };
        mesh.write_identities()?;
        for i in 1..=PEERS {
            let name = format!("backend{i}");
            let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
            let (proc, addr) = mesh.start_backend(&name, addr)?;
            mesh.backends.push(Backend {
                name,
                addr,
                proc: Some(proc),
            });
        }
        for i in 0..PEERS {
            let name = format!("b{}", i + 1);
            let app = mesh.backends[i].addr;
            let config = format!(
                "{}[[authorization.rules]]\naction = \"allow\"\ntrust_domains = [\"{TRUST_DOMAIN}\"]\n",
                mesh.common_config(&name, app)
            );
            let sidecar = mesh.start_sidecar(&name, &config, i as u64 + 1)?;
            mesh.sidecars.push(sidecar);
        }
        mesh.write_endpoints(None)?;
        let endpoints = work.join("endpoints.toml");
        let config = format!(
            "{}[services.orders]\nauthorities = [\"orders\"]\ndiscovery = {{ kind = \"file\", path = \"{}\", interval_ms = {DISCOVERY_INTERVAL_MS} }}\n",
            mesh.common_config("a", ([127, 0, 0, 1], 9).into()),
            endpoints.display()
        );
        let a = mesh.start_sidecar("a", &config, 0)?;
        mesh.sidecars.insert(0, a);
        Ok(mesh)
    }

    /// `[listeners]` on free ports, `[app]` and `[identity]` through the name's symlink.
    fn common_config(&self, name: &str, app: SocketAddr) -> String {
        let id = self.work.join("id").join(name);
        format!(
            "[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
             [app]\naddress = \"{app}\"\nprotocol = \"http1\"\n\n\
             [identity]\ncert = \"{}\"\nkey = \"{}\"\nbundles = {{ \"{TRUST_DOMAIN}\" = \"{}\" }}\n\n",
            id.join("cert.pem").display(),
            id.join("key.pem").display(),
            id.join("bundle.pem").display(),
        )
    }

    fn names() -> Vec<String> {
        let mut names = vec!["a".to_owned()];
        names.extend((1..=PEERS).map(|i| format!("b{i}")));
        names
    }

    /// Writes this generation's files of every sidecar into a fresh directory and points each
    /// sidecar's symlink at it; removes the generation before the previous one.
    fn write_identities(&mut self) -> Result<(), String> {
        let generation = self.pki.generation;
        let gen_dir = self.work.join("gen").join(generation.to_string());
        let bundle = self.pki.bundle_pem();
        for name in Self::names() {
            let dir = gen_dir.join(&name);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let svid = self.pki.current().issue(&format!("/{name}"));
            for (file, text) in [
                ("cert.pem", svid.chain_pem()),
                ("key.pem", svid.key_pem()),
                ("bundle.pem", bundle.clone()),
            ] {
                std::fs::write(dir.join(file), text).map_err(io(&dir))?;
            }
            let link = self.work.join("id").join(&name);
            let tmp = self.work.join("id").join(format!(".{name}.tmp"));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&dir, &tmp).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &link).map_err(io(&link))?;
        }
        if let Some(old) = generation.checked_sub(2) {
            let _ = std::fs::remove_dir_all(self.work.join("gen").join(old.to_string()));
        }
        Ok(())
    }

    /// A new CA, and a new leaf and bundle for every sidecar.
    pub(crate) fn rotate(&mut self) -> Result<(), String> {
        self.pki.advance();
        self.write_identities()
    }

    /// Rewrites A's endpoint file listing B1..B3, without the peer `left_out` if given.
    pub(crate) fn write_endpoints(&self, left_out: Option<usize>) -> Result<(), String> {
        let mut text = String::new();
        let peers = self.sidecars.iter().filter(|s| s.name.starts_with('b'));
        for (i, peer) in peers.enumerate() {
            if Some(i) == left_out {
                continue;
            }
            let _ = write!(
                text,
                "[[endpoints]]\naddr = \"{}\"\nidentity = \"spiffe://{TRUST_DOMAIN}/{}\"\n\n",
                peer.inbound, peer.name
            );
        }
        write_atomically(&self.work.join("endpoints.toml"), &text)
    }

    /// SIGKILLs backend `index` and starts it again on the same port (a few tries: the port may
    /// not be free at once). A failure is counted, not fatal: the next restart tries again.
    pub(crate) fn restart_backend(&mut self, index: usize) {
        let (name, addr) = {
            let b = &mut self.backends[index];
            drop(b.proc.take());
            (b.name.clone(), b.addr)
        };
        for _ in 0..5 {
            match self.start_backend(&name, addr) {
                Ok((proc, _)) => {
                    self.backends[index].proc = Some(proc);
                    return;
                }
                Err(e) => {
                    eprintln!("soak: restarting {name}: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        self.restart_failures += 1;
    }

    fn log(&self, name: &str) -> PathBuf {
        self.work.join("logs").join(format!("{name}.log"))
    }

    /// How a child named `name` starts: its stderr appended to `logs/<name>.log` (a backend
    /// restarted keeps one log).
    fn spawn(&self, name: &str, program: &str) -> Spawn {
        Spawn::new(name, self.bin.join(program), &self.work.join("logs")).append_log(true)
    }

    fn start_backend(&self, name: &str, addr: SocketAddr) -> Result<(Proc, SocketAddr), String> {
        let (proc, line) = self
            .spawn(name, "backend")
            .args(["--name", name, "--listen", &addr.to_string()])
            .ready_line("backend: ready", READY_TIMEOUT)?;
        Ok((proc, ready_addr(&line, "listen")?))
    }

    fn start_sidecar(&self, name: &str, config: &str, offset: u64) -> Result<Sidecar, String> {
        let path = self.work.join(format!("{name}.toml"));
        std::fs::write(&path, config).map_err(io(&path))?;
        let seed = self.seed.wrapping_add(offset).to_string();
        let args: [OsString; 4] = ["--config".into(), path.into(), "--seed".into(), seed.into()];
        let (proc, line) = self
            .spawn(name, "mesh-sidecar")
            .args(args)
            .ready_line("mesh-sidecar: ready", READY_TIMEOUT)?;
        Ok(Sidecar {
            name: name.to_owned(),
            proc,
            inbound: ready_addr(&line, "inbound")?,
            outbound: ready_addr(&line, "outbound")?,
            admin: ready_addr(&line, "admin")?,
        })
    }

    /// Lines containing `panicked` in each sidecar's stderr log, by sidecar name.
    pub(crate) fn panics(&self) -> Vec<(String, u64)> {
        Self::names()
            .into_iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.log(&name)).unwrap_or_default();
                let n = text.lines().filter(|l| l.contains("panicked")).count() as u64;
                (name, n)
            })
            .collect()
    }

    /// Lines containing `panicked` in the backends' stderr logs (every restart appends).
    pub(crate) fn backend_panics(&self) -> u64 {
        self.backends
            .iter()
            .map(|b| {
                let text = std::fs::read_to_string(self.log(&b.name)).unwrap_or_default();
                text.lines().filter(|l| l.contains("panicked")).count() as u64
            })
            .sum()
    }
}
