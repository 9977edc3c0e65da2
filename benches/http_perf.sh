#!/usr/bin/env bash
# Issue 9: where the layer's time goes over HTTP. Profiles the load-test
# server (bare, then idem-memory; one tokio worker) with `perf record`
# while wrk sends unique keys, and prints the self time per request of
# each component (kernel, malloc, hashing, idem, idem-http, tokio, ...)
# for both, side by side (benches/http/perf_diff.py).
#
#   bash benches/http_perf.sh            # ~1 minute after the build
#
# The server is built with debuginfo (same code generation) into
# target/prof. perf must be allowed to read the process (root, or
# kernel.perf_event_paranoid <= 1).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-target/http-perf}
mkdir -p "$out"
CARGO_PROFILE_RELEASE_DEBUG=1 cargo build --release -p idem-benches --bin http_server \
  --target-dir target/prof
bin=target/prof/release/http_server
for v in bare idem-memory; do
  "$bin" --variant "$v" --port 0 --workers 1 >"$out/$v.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q '^listening on' "$out/$v.log" && break; sleep 0.05; done
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out/$v.log")
  url="http://127.0.0.1:$port/payments"
  wrk -t1 -c16 -d2s -s benches/http/unique.lua "$url" -- warm >/dev/null
  t0=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
  perf record -q -F 4999 -o "$out/$v.data" -p "$pid" -- \
    wrk -t1 -c16 -d4s -s benches/http/unique.lua "$url" -- prof | grep '^RESULT' >"$out/$v.result"
  t1=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
  echo "ticks=$((t1 - t0)) clk_tck=$(getconf CLK_TCK)" >>"$out/$v.result"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done
python3 benches/http/perf_diff.py "$out" "${TOP:-25}"
