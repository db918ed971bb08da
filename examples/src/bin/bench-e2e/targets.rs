//! The systems under test and how each is started: the backend alone (`direct`), `mesh-sidecar`,
//! `hyper-floor` (a bare hyper reverse proxy: the floor mesh-sidecar's cost is judged against),
//! HAProxy and nginx, each pinned to CPU 1 with one worker and proxying to the backend over
//! HTTP/1.1 keep-alive. The proxy configurations are generated here, one file per start, into the
//! run's work directory.

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_tls::test_ca::TestCa;

use crate::children::{self, Proc};

/// The CPU the proxies and the backend run on; the load generators run on CPU 0.
pub(crate) const SERVER_CPU: u32 = 1;

/// How long a child may take to print its ready line or to listen.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The `Host` every load generator sends; the sidecar routes it to the backend service.
pub(crate) const HOST: &str = "backend";

/// One system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    /// The backend, no proxy: the baseline the "added" latency is measured against.
    Direct,
    /// Ours.
    Sidecar,
    /// A bare hyper 1.x reverse proxy (hyper's server, hyper-util's pooled client, no mesh layer):
    /// what mesh-sidecar would cost if its layers cost nothing.
    Floor,
    /// HAProxy.
    Haproxy,
    /// nginx.
    Nginx,
}

impl Target {
    /// All five, in the order of the tables.
    pub(crate) const ALL: [Target; 5] = [
        Target::Direct,
        Target::Sidecar,
        Target::Floor,
        Target::Haproxy,
        Target::Nginx,
    ];
    /// What mesh-sidecar is compared with in the ratios, in the order of their columns.
    pub(crate) const BASELINES: [Target; 3] = [Target::Floor, Target::Haproxy, Target::Nginx];

    /// Whether it is a proxy (everything but `direct`).
    pub(crate) fn is_proxy(self) -> bool {
        self != Target::Direct
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Target::ALL
            .into_iter()
            .find(|t| t.to_string() == s)
            .ok_or_else(|| {
                format!("unknown target {s:?} (direct, mesh-sidecar, hyper-floor, haproxy, nginx)")
            })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Direct => "direct",
            Target::Sidecar => "mesh-sidecar",
            Target::Floor => "hyper-floor",
            Target::Haproxy => "haproxy",
            Target::Nginx => "nginx",
        })
    }
}

/// Where the binaries and files of one benchmark run are.
#[derive(Debug)]
pub(crate) struct Env {
    /// Our release binaries (`backend`, `mesh-sidecar`, `hyper-floor`).
    pub(crate) bin_dir: PathBuf,
    /// Configs, identities and logs.
    pub(crate) work: PathBuf,
    /// `haproxy`.
    pub(crate) haproxy: PathBuf,
    /// `nginx`.
    pub(crate) nginx: PathBuf,
}

/// A started backend.
#[derive(Debug)]
pub(crate) struct Backend {
    /// Its process.
    pub(crate) proc: Proc,
    /// Its listener.
    pub(crate) addr: SocketAddr,
}

/// A started system under test (for `direct`: no process of its own).
#[derive(Debug)]
pub(crate) struct Running {
    /// The proxy process (`None` for `direct`).
    pub(crate) proc: Option<Proc>,
    /// Plaintext HTTP listener the load generator uses (the sidecar's outbound).
    pub(crate) plain: SocketAddr,
    /// mTLS listener (the sidecar's inbound, HAProxy's `ssl` bind), if configured.
    pub(crate) tls: Option<SocketAddr>,
}

/// The address after `key=` in a ready line.
pub(crate) fn ready_addr(line: &str, key: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))?
        .parse()
        .ok()
}

/// Starts the backend pinned to the server CPU with one worker.
pub(crate) fn start_backend(env: &Env) -> Result<Backend, String> {
    let (proc, line) = children::spawn("backend", env.bin_dir.join("backend"), &env.work)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--max-connections",
            "30000",
        ])
        .cpu(SERVER_CPU)
        .ready_line("backend: ready", START_TIMEOUT)?;
    let addr =
        ready_addr(&line, "listen").ok_or_else(|| format!("unexpected ready line {line:?}"))?;
    Ok(Backend { proc, addr })
}

/// Starts `target` in front of `backend`.
pub(crate) fn start(env: &Env, target: Target, backend: &Backend) -> Result<Running, String> {
    match target {
        Target::Direct => Ok(Running {
            proc: None,
            plain: backend.addr,
            tls: None,
        }),
        Target::Sidecar | Target::Floor => start_ours(env, target, backend.addr, None),
        Target::Haproxy | Target::Nginx => start_with_free_ports(env, target, backend.addr),
    }
}

/// The test-CA identities: `proxy` (the sidecar's SVID and HAProxy's server certificate) and
/// `loadgen` (the handshake client's certificate), plus `roots.pem` and `haproxy.pem` (chain and
/// key in one file, as HAProxy's `crt` wants).
pub(crate) fn write_identities(dir: &Path) -> Result<String, String> {
    let ca = TestCa::new("bench.example");
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("cannot write {name}: {e}"))
    };
    for name in ["proxy", "loadgen"] {
        let svid = ca.issue(&format!("/{name}"));
        write(&format!("{name}-cert.pem"), svid.chain_pem())?;
        write(&format!("{name}-key.pem"), svid.key_pem())?;
        if name == "proxy" {
            write(
                "haproxy.pem",
                format!("{}{}", svid.chain_pem(), svid.key_pem()),
            )?;
        }
    }
    write("roots.pem", ca.root_pem())?;
    Ok(ca.trust_domain().to_string())
}

/// The sidecar configuration: outbound routes `Host: backend` to the backend over plaintext
/// HTTP/1.1 (pooled keep-alive); inbound (mTLS) forwards to the backend as the local app.
pub(crate) fn sidecar_config(backend: SocketAddr, trust_domain: &str) -> String {
    format!(
        "[listeners]\n\
         inbound = \"127.0.0.1:0\"\n\
         outbound = \"127.0.0.1:0\"\n\
         admin = \"127.0.0.1:0\"\n\
         \n\
         [app]\n\
         address = \"{backend}\"\n\
         protocol = \"http1\"\n\
         \n\
         [identity]\n\
         cert = \"proxy-cert.pem\"\n\
         key = \"proxy-key.pem\"\n\
         bundles = {{ \"{trust_domain}\" = \"roots.pem\" }}\n\
         \n\
         [services.backend]\n\
         authorities = [\"{HOST}\"]\n\
         transport = \"plaintext\"\n\
         protocol = \"http1\"\n\
         discovery = {{ kind = \"static\", endpoints = [{{ address = \"{backend}\" }}] }}\n"
    )
}

/// A program that runs one of our proxies inside it (`valgrind --tool=callgrind …`): its path,
/// and its arguments before the proxy's own command line.
#[derive(Debug)]
pub(crate) struct Wrapper {
    /// The wrapping program.
    pub(crate) program: PathBuf,
    /// Its arguments, before the proxy's path.
    pub(crate) args: Vec<std::ffi::OsString>,
    /// How long the wrapped proxy may take to print its ready line.
    pub(crate) start_timeout: Duration,
}

/// Starts mesh-sidecar or hyper-floor (the binaries built here) in front of `backend`, inside
/// `wrapper` if given. hyper-floor's runtime has one thread whatever the environment says.
pub(crate) fn start_ours(
    env: &Env,
    target: Target,
    backend: SocketAddr,
    wrapper: Option<&Wrapper>,
) -> Result<Running, String> {
    let (name, args, ready, key): (&str, Vec<std::ffi::OsString>, _, _) = match target {
        Target::Sidecar => {
            let trust_domain = std::fs::read_to_string(env.work.join("trust-domain"))
                .map_err(|e| format!("identities not written: {e}"))?;
            let path = env.work.join("sidecar.toml");
            std::fs::write(&path, sidecar_config(backend, trust_domain.trim()))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            // One worker, as the other proxies: the sidecar then runs a current-thread runtime.
            let args = vec![
                "--config".into(),
                path.into_os_string(),
                "--workers".into(),
                "1".into(),
            ];
            ("mesh-sidecar", args, "mesh-sidecar: ready", "outbound")
        }
        Target::Floor => {
            let args = vec![
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--upstream".into(),
                backend.to_string().into(),
            ];
            ("hyper-floor", args, "hyper-floor: ready", "listen")
        }
        other => return Err(format!("{other} is not one of the proxies built here")),
    };
    let binary = env.bin_dir.join(name);
    let (spawn, timeout) = match wrapper {
        None => (
            children::spawn(name, binary, &env.work).args(args),
            START_TIMEOUT,
        ),
        Some(w) => (
            children::spawn(name, w.program.clone(), &env.work)
                .args(w.args.iter().cloned())
                .args([binary.into_os_string()])
                .args(args),
            w.start_timeout,
        ),
    };
    let (proc, line) = spawn.cpu(SERVER_CPU).ready_line(ready, timeout)?;
    let addr =
        |key| ready_addr(&line, key).ok_or_else(|| format!("unexpected ready line {line:?}"));
    Ok(Running {
        plain: addr(key)?,
        tls: match target {
            Target::Sidecar => Some(addr("inbound")?),
            _ => None,
        },
        proc: Some(proc),
    })
}

/// HAProxy and nginx cannot bind port 0 and report it, so ask the OS for a free port, release it
/// and start the proxy on it; if the proxy exits at once (someone took the port in between), try
/// again with new ports.
fn start_with_free_ports(
    env: &Env,
    target: Target,
    backend: SocketAddr,
) -> Result<Running, String> {
    for _ in 0..5 {
        let plain = free_port()?;
        let tls = free_port()?;
        let spawn = match target {
            Target::Haproxy => {
                let path = env.work.join("haproxy.cfg");
                let config =
                    haproxy_config(plain, tls, backend, &env.work, crate::children::nofile());
                std::fs::write(&path, config)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                children::spawn("haproxy", &env.haproxy, &env.work).args([
                    "-db".into(),
                    "-f".into(),
                    path.into_os_string(),
                ])
            }
            _ => {
                let dir = env.work.join("nginx");
                std::fs::create_dir_all(dir.join("tmp")).map_err(|e| e.to_string())?;
                let path = dir.join("nginx.conf");
                std::fs::write(
                    &path,
                    nginx_config(plain, backend, &dir, crate::children::nofile()),
                )
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                let error_log = dir.join("error.log");
                children::spawn("nginx", &env.nginx, &env.work).args([
                    "-p".into(),
                    dir.clone().into_os_string(),
                    "-e".into(),
                    error_log.into_os_string(),
                    "-c".into(),
                    path.into_os_string(),
                    "-g".into(),
                    "daemon off;".into(),
                ])
            }
        };
        match spawn.cpu(SERVER_CPU).listening(plain, START_TIMEOUT) {
            Ok(proc) => {
                return Ok(Running {
                    proc: Some(proc),
                    plain,
                    tls: (target == Target::Haproxy).then_some(tls),
                });
            }
            Err(Some(e)) => return Err(e),
            Err(None) => continue,
        }
    }
    Err(format!(
        "{target} would not start on a free port (5 attempts); see its log"
    ))
}

fn free_port() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))
}

/// HAProxy: one thread, no logs, keep-alive on both sides with `http-reuse always`, a plaintext
/// frontend and a TLS 1.3 frontend that requires a client certificate from the test CA.
///
/// `nofile` is the open-file limit it gets. HAProxy reserves two descriptors per `maxconn` (client
/// and server side) and by default refuses to start when the limit is lower; with keep-alive
/// reuse, idle client connections hold no server connection, so `maxconn` is set to the limit
/// minus a margin and `no strict-limits` lets it start with a warning.
pub(crate) fn haproxy_config(
    plain: SocketAddr,
    tls: SocketAddr,
    backend: SocketAddr,
    dir: &Path,
    nofile: u64,
) -> String {
    let maxconn = nofile.saturating_sub(1000).clamp(1000, 30_000);
    let crt = dir.join("haproxy.pem");
    let roots = dir.join("roots.pem");
    format!(
        "global\n\
         \x20   nbthread 1\n\
         \x20   ulimit-n {nofile}\n\
         \x20   no strict-limits\n\
         \x20   maxconn {maxconn}\n\
         \n\
         defaults\n\
         \x20   mode http\n\
         \x20   maxconn {maxconn}\n\
         \x20   option http-keep-alive\n\
         \x20   http-reuse always\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   timeout http-keep-alive 60s\n\
         \n\
         frontend plain\n\
         \x20   bind {plain}\n\
         \x20   default_backend app\n\
         \n\
         frontend mtls\n\
         \x20   bind {tls} ssl crt {crt} ca-file {roots} verify required ssl-min-ver TLSv1.3\n\
         \x20   default_backend app\n\
         \n\
         backend app\n\
         \x20   server backend {backend}\n",
        crt = crt.display(),
        roots = roots.display(),
    )
}

/// nginx: one worker process, no access log, upstream keep-alive (`keepalive` +
/// `proxy_http_version 1.1` + an empty `Connection` header), and no per-connection request cap so
/// no proxy closes a keep-alive connection during a run. `worker_connections` (client and
/// upstream connections together) fits in the open-file limit `nofile`.
pub(crate) fn nginx_config(
    plain: SocketAddr,
    backend: SocketAddr,
    dir: &Path,
    nofile: u64,
) -> String {
    let d = dir.display();
    let connections = nofile.saturating_sub(100).clamp(1000, 30_000);
    format!(
        "worker_processes 1;\n\
         worker_rlimit_nofile {nofile};\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections {connections}; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path {d}/tmp/body;\n\
         \x20   proxy_temp_path {d}/tmp/proxy;\n\
         \x20   fastcgi_temp_path {d}/tmp/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/tmp/uwsgi;\n\
         \x20   scgi_temp_path {d}/tmp/scgi;\n\
         \x20   keepalive_timeout 60s;\n\
         \x20   keepalive_requests 1000000000;\n\
         \x20   upstream app {{\n\
         \x20       server {backend};\n\
         \x20       keepalive 128;\n\
         \x20       keepalive_requests 1000000000;\n\
         \x20   }}\n\
         \x20   server {{\n\
         \x20       listen {plain};\n\
         \x20       location / {{\n\
         \x20           proxy_pass http://app;\n\
         \x20           proxy_http_version 1.1;\n\
         \x20           proxy_set_header Connection \"\";\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_give_addresses() {
        let line = "mesh-sidecar: ready inbound=127.0.0.1:1 outbound=127.0.0.1:2 admin=127.0.0.1:3";
        assert_eq!(
            ready_addr(line, "outbound"),
            Some("127.0.0.1:2".parse().unwrap())
        );
        assert_eq!(ready_addr(line, "in"), None);
        assert_eq!(ready_addr("backend: ready listen=x", "listen"), None);
    }

    #[test]
    fn target_names_read_back() {
        for target in Target::ALL {
            assert_eq!(target.to_string().parse::<Target>(), Ok(target));
        }
        assert_eq!("hyper-floor".parse::<Target>(), Ok(Target::Floor));
        assert!("envoy".parse::<Target>().is_err());
    }

    #[test]
    fn configs_name_loopback_addresses_and_one_worker() {
        let p: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let h = haproxy_config(
            p,
            "127.0.0.1:1001".parse().unwrap(),
            b,
            Path::new("/tmp/x"),
            20_000,
        );
        assert!(h.contains("ulimit-n 20000") && h.contains("maxconn 19000"));
        assert!(h.contains("nbthread 1") && h.contains("bind 127.0.0.1:1000\n"));
        assert!(h.contains("verify required") && h.contains("server backend 127.0.0.1:2000"));
        assert!(!h.contains("log "), "no logging");
        let n = nginx_config(p, b, Path::new("/tmp/x"), 20_000);
        assert!(
            n.contains("worker_connections 19900;") && n.contains("worker_rlimit_nofile 20000;")
        );
        assert!(n.contains("worker_processes 1;") && n.contains("access_log off;"));
        assert!(n.contains("listen 127.0.0.1:1000;") && n.contains("server 127.0.0.1:2000;"));
        assert!(n.contains("proxy_set_header Connection \"\";"));
        let s = sidecar_config(b, "bench.example");
        assert!(s.contains("transport = \"plaintext\"") && s.contains("protocol = \"http1\""));
        assert!(s.contains("address = \"127.0.0.1:2000\""));
    }
}
