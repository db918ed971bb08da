#!/usr/bin/env bash
# Memory after a connection flood (BENCHMARKS.md, "Memory after a connection flood").
#
#   examples/scripts/flood-memory.sh [glibc|mimalloc|jemalloc] [connections]
#
# Builds mesh-sidecar (with the chosen global allocator; jemalloc is the default), backend and flood in release, makes a
# throw-away trust domain, and for each mode in $MODES (default "h2 http1 steady") starts a fresh
# sidecar with one plaintext service in front of the backend and runs `flood` against its
# outbound listener. Each run prints one Markdown row. Extra environment for the sidecar goes in
# SIDECAR_ENV, e.g. SIDECAR_ENV="GLIBC_TUNABLES=glibc.malloc.mmap_threshold=32768".
# Loopback only; needs `connections + 64` open files (the soft limit is raised to the hard one).
set -euo pipefail

alloc="${1:-glibc}"
connections="${2:-9000}"
modes="${MODES:-h2 http1 steady}"
case "$alloc" in
  glibc) features=(--no-default-features) ;;
  mimalloc) features=(--features mimalloc) ;;
  jemalloc) features=() ;;
  *) echo "usage: $0 [glibc|mimalloc|jemalloc] [connections]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "$0")/../.." && pwd)"
cargo build --release --manifest-path "$root/Cargo.toml" -p mesh-examples \
  --bin mesh-sidecar --bin backend --bin flood ${features[@]+"${features[@]}"}
built="${CARGO_TARGET_DIR:-$root/target}/release"

hard="$(ulimit -Hn)"
[ "$hard" = unlimited ] && hard=65536
ulimit -n "$hard"

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Private copies, so that a build started meanwhile (another allocator) does not swap them.
bin="$tmp/bin"
mkdir "$bin"
cp "$built/mesh-sidecar" "$built/backend" "$built/flood" "$bin/"

# Waits for a `<name>: ready ...` line in a file and prints it.
ready_line() {
  for _ in $(seq 100); do
    if grep -q ': ready ' "$1" 2>/dev/null; then grep -m1 ': ready ' "$1"; return; fi
    sleep 0.1
  done
  echo "no ready line in $1" >&2
  exit 1
}

"$bin/mesh-sidecar" identity init --trust-domain flood.test --out "$tmp/ca" >/dev/null
"$bin/mesh-sidecar" identity issue --ca "$tmp/ca" --spiffe-id spiffe://flood.test/sidecar \
  --out "$tmp/svid" >/dev/null

"$bin/backend" >"$tmp/backend.out" 2>"$tmp/backend.err" &
pids+=($!)
backend="$(ready_line "$tmp/backend.out" | sed 's/.*listen=//')"

cat >"$tmp/sidecar.toml" <<TOML
[listeners]
inbound = "127.0.0.1:0"
outbound = "127.0.0.1:0"
admin = "127.0.0.1:0"

[app]
address = "$backend"

[identity]
cert = "$tmp/svid/svid.pem"
key = "$tmp/svid/svid-key.pem"
bundles = { "flood.test" = "$tmp/ca/bundle.pem" }

[services.web]
authorities = ["web"]
transport = "plaintext"
protocol = "http1"
discovery = { kind = "static", endpoints = [{ address = "$backend" }] }
TOML

for mode in $modes; do
  out="$tmp/sidecar-$mode.out"
  # shellcheck disable=SC2086 # SIDECAR_ENV is a list of NAME=value words.
  env ${SIDECAR_ENV:-} "$bin/mesh-sidecar" --config "$tmp/sidecar.toml" --seed 1 \
    >"$out" 2>"$tmp/sidecar-$mode.err" &
  sidecar=$!
  pids+=("$sidecar")
  outbound="$(ready_line "$out" | sed 's/.*outbound=\([^ ]*\).*/\1/')"
  sleep 5
  if [ "$mode" = steady ]; then
    "$bin/flood" --mode steady --addr "$outbound" --pid "$sidecar" --interval-ms 0 \
      --duration 30 --label "$alloc, idle 30 s"
    "$bin/flood" --mode steady --addr "$outbound" --pid "$sidecar" --interval-ms 1000 \
      --duration 60 --label "$alloc, 1 req/s for 60 s"
  else
    "$bin/flood" --mode "$mode" --addr "$outbound" --pid "$sidecar" \
      --connections "$connections" --label "$alloc, $mode"
  fi
  kill -TERM "$sidecar"
  wait "$sidecar" || true
done
