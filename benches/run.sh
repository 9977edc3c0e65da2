#!/usr/bin/env bash
# Produces every figure in BENCHMARKS.md, in one go (about 7 minutes on the
# 2-core benchmark machine):
#   1. the criterion benches (medians per contender, executions per pass),
#   2. the interleaved report (ratios from neighbouring measurements),
#   3. the memory figures (counting allocator).
# Outputs go to $OUT (default target/bench-results).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out="${OUT:-$target/bench-results}"
mkdir -p "$out"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "nproc: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo || true
  rustc --version
  echo "loadavg before: $(cat /proc/loadavg)"
} | tee "$out/machine.txt"

cargo bench -p idem-benches --bench contention 2>&1 | tee "$out/criterion.log"
grep '^EXECUTIONS' "$out/criterion.log" > "$out/criterion-executions.txt" || true
if command -v python3 >/dev/null; then
  python3 benches/criterion_table.py "$target/criterion" | tee "$out/criterion-medians.md"
fi

cargo run --release -p idem-benches --bin report | tee "$out/report.md"
cargo run --release -p idem-benches --bin memory | tee "$out/memory.md"
echo "loadavg after: $(cat /proc/loadavg)" | tee -a "$out/machine.txt"
