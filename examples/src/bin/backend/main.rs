//! `backend`: a small HTTP server for tests and benchmarks. It answers every request with `200` and
//! a short body naming itself and the path, optionally after a delay or with a body of a fixed size.
//! HTTP/1.1 and HTTP/2 without TLS (h2c) on one port, through mesh-core's server.
//!
//! Once it listens it prints one line to stdout: `backend: ready listen=<addr>` (port 0 means any
//! free port; the line gives the real one). SIGTERM or Ctrl-C drains in-flight requests and exits 0.
//! The end-to-end tests kill it mid-run; the benchmark script runs it as the upstream of every proxy.

// jemalloc (feature `jemalloc`, default) with background purge threads: after 9 000 flood
// connections close, RSS falls back to ~50 MiB within 10 s, where glibc's malloc keeps 159 MiB
// (idle HTTP/2) or 435 MiB (30 KB HTTP/1.1 heads) for good; BENCHMARKS.md, "Memory after a
// connection flood". `--no-default-features` gives glibc's malloc; `mimalloc` is for comparison.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use mesh_core::Body;
use mesh_core::server::{Server, ServerConfig};
use mesh_examples::args::{ArgError, Args};
use tokio::net::TcpListener;

const USAGE: &str = "\
backend: a small HTTP/1.1 + h2c server that answers 200 (for tests and benchmarks)

USAGE:
    backend [--listen <ADDR>] [--name <NAME>] [--delay-ms <N>] [--body-bytes <N>]
            [--workers <N>] [--max-connections <N>]

OPTIONS:
    --listen <ADDR>          address to listen on (default 127.0.0.1:0, any free port)
    --name <NAME>            the name in each answer and in the x-backend header (default backend)
    --delay-ms <N>           wait this long before answering (default 0)
    --body-bytes <N>         answer with a body of exactly N bytes instead of \"<name> <path>\\n\"
    --workers <N>            runtime threads; 1 (default) runs everything on one thread
    --max-connections <N>    connections served at once (default 10000; more wait to be accepted)
    --help                   print this text";

struct Options {
    listen: SocketAddr,
    name: String,
    delay: Duration,
    body_bytes: Option<usize>,
    workers: NonZeroUsize,
    max_connections: usize,
}

fn options() -> Result<Options, ArgError> {
    let mut args = Args::parse(std::env::args().skip(1))?;
    let listen = args.value("--listen", SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let name: String = args.value("--name", "backend".to_owned())?;
    let delay_ms: u64 = args.value("--delay-ms", 0)?;
    let body_bytes: usize = args.value("--body-bytes", usize::MAX)?;
    let workers = args.value("--workers", NonZeroUsize::MIN)?;
    let max_connections: usize = args.value("--max-connections", 10_000)?;
    args.finish()?;
    if HeaderValue::from_str(&name).is_err() {
        return Err(ArgError::Invalid {
            flag: "--name".into(),
            value: name,
            reason: "must be usable as a header value".into(),
        });
    }
    Ok(Options {
        listen,
        name,
        delay: Duration::from_millis(delay_ms),
        body_bytes: (body_bytes != usize::MAX).then_some(body_bytes),
        workers,
        max_connections,
    })
}

fn main() {
    let options = mesh_examples::args::or_exit(options(), "backend", USAGE);
    let result = mesh_examples::runtime::build_runtime(options.workers)
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(run(options)).map_err(|e| e.to_string()));
    if let Err(e) = result {
        eprintln!("backend: {e}");
        std::process::exit(1);
    }
}

async fn run(options: Options) -> std::io::Result<()> {
    let listener = TcpListener::bind(options.listen).await?;
    let server = Server::new(listener)
        .config(ServerConfig::default().max_connections(options.max_connections));
    let addr = server.local_addr()?;
    let name = HeaderValue::from_str(&options.name).unwrap_or(HeaderValue::from_static("backend"));
    let fixed = options.body_bytes.map(|n| Bytes::from(vec![b'x'; n]));
    let delay = options.delay;
    let app = tower::service_fn(move |req: Request<Incoming>| {
        let body = match &fixed {
            Some(bytes) => Body::from(bytes.clone()),
            None => Body::from(format!(
                "{} {}\n",
                name.to_str().unwrap_or("backend"),
                req.uri().path()
            )),
        };
        let name = name.clone();
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut res = Response::new(body);
            res.headers_mut().insert("x-backend", name);
            Ok::<_, Infallible>(res)
        }
    });
    println!("backend: ready listen={addr}");
    server
        .serve_with_shutdown(app, async {
            let _ = mesh_examples::admin::shutdown_signal().await;
        })
        .await
}
