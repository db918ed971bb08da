//! The `--help` text.

/// What `bench-e2e --help` prints.
pub(crate) const USAGE: &str = "\
bench-e2e: end-to-end comparison of mesh-sidecar with a bare hyper proxy, HAProxy and nginx
(loopback, one machine)

USAGE:
    cargo run --release -p mesh-examples --bin bench-e2e -- [OPTIONS]

    Full run (the published figures; about 40 min, of which ~14 min fixed-rate runs, ~5 min
    ceiling, ~2 min handshakes, ~4 min idle connections, ~12 min microbenchmarks with their
    compilation, ~2 min callgrind; plus the first-time installs):
        cargo run --release -p mesh-examples --bin bench-e2e
    Smoke test of the tooling (about 2 min; figures not to be quoted):
        cargo run --release -p mesh-examples --bin bench-e2e -- --quick

WHAT IT DOES
    Installs what is missing: HAProxy and nginx (and valgrind, for the callgrind part) with
    `apt-get update && apt-get install -y haproxy nginx valgrind` (needs root; otherwise it
    prints the command and stops), and oha with
    `cargo install oha --locked` (this compiles oha: several minutes). Builds `backend`,
    `mesh-sidecar` and `hyper-floor` with the workspace's `production` profile (release with
    fat LTO and one codegen unit: a few minutes more the first time). Needs `taskset` and at
    least 2 CPUs; uses `prlimit`, when installed, to raise its open-file limit (to 65536, or to
    the hard limit if that cannot be raised); the children inherit it.

    Load generators run on CPU 0, each proxy and the backend on CPU 1 (`taskset`), every server
    with one worker (mesh-sidecar and the backend: --workers 1, a current-thread runtime;
    hyper-floor: a current-thread runtime; HAProxy: nbthread 1; nginx: worker_processes 1), HTTP/1.1
    keep-alive to the backend, no access logs. Every measurement starts a fresh backend and
    proxy on 127.0.0.1 ports chosen at run time; every child process is killed at the end, on
    error and on Ctrl-C.

    Targets (--targets):
      direct       oha straight to the backend (always run: the baseline of added latency)
      mesh-sidecar its outbound listener through the full client stack
      hyper-floor  a bare hyper 1.x reverse proxy (hyper's server, hyper-util's pooled client,
                   no mesh layer): the floor mesh-sidecar's cost is judged against
      haproxy      HAProxy 2.x, http-reuse always
      nginx        nginx with upstream keepalive

    Parts (--parts):
      latency    for each repeat, each rate, each target:
                 oha at a fixed rate with latency correction; p50/p99/p99.9, latency added over
                 direct in the same repeat, proxy and backend CPU-seconds per 100k requests
                 (/proc), peak RSS (VmHWM), errors
      ceiling    for each repeat, each target: oha closed loop; requests/s and CPU per 100k
      handshake  for each repeat: TLS 1.3 handshakes/s with a client certificate, no keep-alive,
                 against the mesh-sidecar inbound listener and HAProxy `ssl ... verify required`
      idle       for each proxy (hyper-floor too) and level: RSS per idle keep-alive
                 connection
      micro      cargo bench of towermesh-balance (balancer), towermesh-retry (retry),
                 towermesh-tls (handshake), towermesh (client_stack) and mesh-examples (allocs:
                 heap allocations per proxied request, mesh-sidecar's path against the floor)
      callgrind  mesh-sidecar and hyper-floor under valgrind's callgrind with its cache
                 simulation: 500 warm-up requests, then instructions, L1 instruction and data
                 misses and callgrind's cycle estimate per request over 5 000 sequential
                 keep-alive requests (counts, not times: stable on a noisy machine)

    The report replaces the generated section of BENCHMARKS.md at the workspace root (between
    its markers; text around it is kept): date, machine, tool versions, method, one table per
    part, and the ratios of mesh-sidecar to hyper-floor, HAProxy and nginx.

OPTIONS:
    --quick                      smoke mode: --duration 2, --repeats 1, --idle-levels 1000, no
                                 micro and callgrind parts (any option given explicitly still
                                 applies)
    --duration <SECS>            length of every oha and handshake run (default 10)
    --repeats <N>                repeats of latency, ceiling and handshake (default 5)
    --rates <LIST>               fixed rates in req/s, comma-separated (default 1000,5000,10000)
    --connections <N>            oha connections at a fixed rate (default 32)
    --ceiling-connections <N>    oha connections in the closed loop (default 64)
    --handshake-concurrency <N>  concurrent handshake tasks (default 32)
    --idle-levels <LIST>         idle connection counts (default 1000,5000,10000)
    --idle-hold <SECS>           how long the idle connections are held; RSS is read at 2 s
                                 and at the end (default 15; --quick: 2)
    --parts <LIST>               parts to run, comma-separated, from latency, ceiling,
                                 handshake, idle, micro, callgrind (default: all)
    --targets <LIST>             targets to measure, comma-separated, from mesh-sidecar,
                                 hyper-floor, haproxy, nginx (default: all; direct always)
    --skip-micro                 leave out the micro part
    --no-install                 fail instead of installing missing tools
    --keep-work                  keep the temporary directory with configs and logs
    --output <FILE>              report file (default BENCHMARKS.md at the workspace root)
    --help                       print this text";
