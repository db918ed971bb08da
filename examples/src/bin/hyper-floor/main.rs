//! `hyper-floor`: a bare hyper 1.x reverse proxy, the floor the mesh's cost is measured against.
//!
//! One worker thread (a current-thread tokio runtime), hyper's HTTP/1.1 server, hyper-util's
//! pooled legacy client to one upstream over plaintext HTTP/1.1, and no mesh layer at all: no
//! routing, tracing, metrics, timeout, retry, balancing or breaker. Whatever mesh-sidecar costs
//! above this binary on the same path is the price of its layers and plumbing, not of hyper; that
//! is why `bench-e2e` measures it next to mesh-sidecar, HAProxy and nginx in every run.
//!
//! Once it listens it prints one line to stdout: `hyper-floor: ready listen=<addr>` (port 0 means
//! any free port; the line gives the real one). It runs until killed.

// The same allocator as mesh-sidecar, so the comparison is of the code, not of the allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod proxy;

use std::net::SocketAddr;

use mesh_examples::args::{ArgError, Args};
use tokio::net::TcpListener;

const USAGE: &str = "\
hyper-floor: a bare hyper reverse proxy (one worker, pooled HTTP/1.1 upstream, no mesh layers)

USAGE:
    hyper-floor --upstream <ADDR> [--listen <ADDR>]

OPTIONS:
    --upstream <ADDR>   the server every request is forwarded to (required), e.g. 127.0.0.1:8080
    --listen <ADDR>     address to listen on (default 127.0.0.1:0, any free port)
    --help              print this text";

fn options() -> Result<(SocketAddr, SocketAddr), ArgError> {
    let mut args = Args::parse(std::env::args().skip(1))?;
    let listen = args.value("--listen", SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let upstream: String = args.value("--upstream", String::new())?;
    args.finish()?;
    if upstream.is_empty() {
        return Err(ArgError::MissingValue("--upstream".into()));
    }
    let upstream = upstream.parse().map_err(|e| ArgError::Invalid {
        flag: "--upstream".into(),
        value: upstream,
        reason: format!("{e}"),
    })?;
    Ok((listen, upstream))
}

fn main() {
    let (listen, upstream) = mesh_examples::args::or_exit(options(), "hyper-floor", USAGE);
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|rt| {
            rt.block_on(async {
                let listener = TcpListener::bind(listen).await?;
                println!("hyper-floor: ready listen={}", listener.local_addr()?);
                proxy::serve(listener, proxy::Floor::new(upstream)).await
            })
        });
    if let Err(e) = result {
        eprintln!("hyper-floor: {e}");
        std::process::exit(1);
    }
}
