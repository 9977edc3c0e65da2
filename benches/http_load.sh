#!/usr/bin/env bash
# Issue 9: the payments example's service under wrk on loopback, bare and
# behind an Idempotency-Key layer, every variant measured in the same run
# (about 4.5 minutes with the defaults):
#
#   bash benches/http_load.sh
#   ROUNDS=5 DURATION=6 bash benches/http_load.sh       # longer
#   VARIANTS="bare idem-memory" CASES="unique" bash benches/http_load.sh
#
# Variants (one server process each, all started at the beginning, each
# on a tokio runtime of $WORKERS worker threads):
#   bare               no layer
#   idem-memory        idem-http's layer on idem's MemoryStore
#   idem-redis         idem-http's layer on idem-redis's RedisStore, on a
#                      redis-server of this script's own (a free port)
#   idempotent-memory  the `idempotent` crate's axum layer (2.0.0) on its
#                      memory store: benches/http-peer, a crate outside the
#                      workspace built with --ignore-rust-version (left out,
#                      with a message, if it does not build)
#
# Cases (benches/http/*.lua; wrk -t1 -c$CONNECTIONS -d$DURATION, the
# variants in an order that rotates each round):
#   unique        POST /payments, a fresh Idempotency-Key per request
#   replay        POST /payments over $KEYS keys, each sent once first
#                 (checked), so that every measured request is a replay
#   unique-slow   POST /payments/slow (the handler sleeps $WORK_MS ms)
#   replay-slow   POST /payments/slow, replays of $KEYS warmed keys
#   storm         POST /payments/storm (the handler sleeps $STORM_MS ms,
#                 behind a layer in wait mode): every request the same key,
#                 from $STORM_CONNECTIONS connections at once, for
#                 $STORM_DURATION s; once per variant, on a fresh server
#                 (idem's count the layer's outcomes from its events)
#
# Reported per case and variant: requests/s (median over rounds), the
# ratio to bare (median of same-round ratios), latency p50/p99 (median
# over rounds), the server's CPU per request (user + system, from
# /proc/PID/stat, redis-server's included for idem-redis) and its CPU use
# (1.00 = one CPU busy for the whole measurement), and the handler's calls
# during the measurement (GET /stats before and after).
#
# Pinning: PIN=1 runs the servers (and redis-server) on CPU 0 and wrk on
# CPU 1. Off by default: on this shared machine a pinned server got as
# little as 40% of its CPU while other sessions ran there, and unpinned
# 1-worker servers got 95-100% of one (see BENCHMARKS.md).
#
# Outputs: $OUT/results.tsv (one row per measurement), $OUT/tables.md,
# the servers' logs. Needs wrk (installed with apt-get if missing),
# redis-server (for idem-redis), python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-4}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
KEYS=${KEYS:-1000}
WORKERS=${WORKERS:-1}
WORK_MS=${WORK_MS:-5}
STORM_MS=${STORM_MS:-2000}
STORM_CONNECTIONS=${STORM_CONNECTIONS:-10000}
STORM_DURATION=${STORM_DURATION:-5}
PIN=${PIN:-0}
VARIANTS=${VARIANTS:-bare idem-memory idem-redis idempotent-memory}
CASES=${CASES:-unique replay unique-slow replay-slow storm}
target="${CARGO_TARGET_DIR:-target}"
OUT=${OUT:-$target/http-load}
mkdir -p "$OUT"

if ! command -v wrk >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y wrk || { $sudo apt-get update && $sudo apt-get install -y wrk; }
fi

# 10,000 storm connections need as many descriptors in wrk and the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((STORM_CONNECTIONS + 1000)) ]; then
  STORM_CONNECTIONS=$(($(ulimit -n) - 1000))
  echo "note: ulimit -n is $(ulimit -n): the storm uses $STORM_CONNECTIONS connections" >&2
fi

cargo build --release -p idem-benches --bin http_server
server_bin="$target/release/http_server"
peer_bin="$target/http-peer/release/http_server_idempotent"
if [[ " $VARIANTS " == *" idempotent-memory "* ]]; then
  if ! cargo build --release --ignore-rust-version --manifest-path benches/http-peer/Cargo.toml \
    --target-dir "$target/http-peer"; then
    echo "note: the idempotent crate's server did not build; idempotent-memory left out" >&2
    VARIANTS=${VARIANTS//idempotent-memory/}
  fi
fi

pin_server=()
pin_client=()
if [ "$PIN" = 1 ]; then
  pin_server=(taskset -c 0)
  pin_client=(taskset -c 1)
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

declare -A port pid extra_pid
if [[ " $VARIANTS " == *" idem-redis "* ]]; then
  redis_port=$(free_port)
  "${pin_server[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --dir "$tmp" --logfile "$OUT/redis.log" &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
fi

# start VARIANT LOG [FLAGS...]: a server of VARIANT, its output in
# $OUT/LOG.log; sets port[VARIANT] and pid[VARIANT].
start() {
  local v=$1 log=$2 cmd
  shift 2
  local args=(--port 0 --workers "$WORKERS" --work-ms "$WORK_MS" --storm-ms "$STORM_MS" "$@")
  case $v in
    idempotent-memory) cmd=("$peer_bin" "${args[@]}") ;;
    idem-redis) cmd=("$server_bin" --variant "$v" --redis "redis://127.0.0.1:$redis_port/" "${args[@]}")
      extra_pid[$v]=$redis_pid ;;
    *) cmd=("$server_bin" --variant "$v" "${args[@]}") ;;
  esac
  "${pin_server[@]}" "${cmd[@]}" >"$OUT/$log.log" 2>&1 &
  pid[$v]=$!
  pids+=("${pid[$v]}")
  for _ in $(seq 200); do
    grep -q '^listening on' "$OUT/$log.log" && break
    kill -0 "${pid[$v]}" 2>/dev/null || { cat "$OUT/$log.log" >&2; exit 1; }
    sleep 0.05
  done
  port[$v]=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$OUT/$log.log")
  [ -n "${port[$v]}" ] || { echo "$v did not start" >&2; cat "$OUT/$log.log" >&2; exit 1; }
}

for v in $VARIANTS; do
  start "$v" "$v"
done

# CPU ticks (user + system) of a variant's processes.
ticks() {
  local total=0 p
  for p in "${pid[$1]}" ${extra_pid[$1]:-}; do
    # Fields after the command name: utime is the 12th, stime the 13th.
    total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}

# The handler's calls on a route (fast, slow, storm) of a variant.
calls() {
  curl -sf "http://127.0.0.1:${port[$1]}/stats" | sed "s/.*\"$2\":\([0-9]*\).*/\1/"
}

# A case's route, its handler's counter and its script.
route_of() { case $1 in *slow) echo /payments/slow ;; storm) echo /payments/storm ;; *) echo /payments ;; esac; }
counter_of() { case $1 in *slow) echo slow ;; storm) echo storm ;; *) echo fast ;; esac; }
script_of() { case $1 in unique*) echo unique ;; replay*) echo replay ;; storm) echo storm ;; esac; }

results="$OUT/results.tsv"
printf 'case\tround\tvariant\tticks\tclk_tck\tcalls\twrk\n' >"$results"
clk=$(getconf CLK_TCK)
run_id="$(date +%s)-$$"

# measure CASE ROUND VARIANT CONNECTIONS DURATION PREFIX [KEYS]: one wrk run, one row.
measure() {
  local case=$1 round=$2 v=$3 conns=$4 dur=$5 prefix=$6 keys=${7:-}
  local counter t0 c0 line t1 c1
  counter=$(counter_of "$case")
  t0=$(ticks "$v")
  c0=$(calls "$v" "$counter")
  line=$("${pin_client[@]}" wrk -t1 -c"$conns" -d"${dur}s" --timeout 30s -s "benches/http/$(script_of "$case").lua" \
    "http://127.0.0.1:${port[$v]}$(route_of "$case")" -- "$prefix" $keys | grep '^RESULT' || true)
  t1=$(ticks "$v")
  c1=$(calls "$v" "$counter")
  [ -n "$line" ] || { echo "wrk gave no result for $case $v" >&2; line="RESULT requests=0"; }
  if [ "$case" = storm ]; then
    # What the layer's events said (idem's servers with --count-outcomes).
    line="$line outcomes=$(curl -sf "http://127.0.0.1:${port[$v]}/outcomes" || true)"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$round" "$v" $((t1 - t0)) "$clk" $((c1 - c0)) "${line#RESULT }" >>"$results"
  echo "  $case round $round $v: ${line#RESULT }, handler calls $((c1 - c0))" >&2
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "nproc: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
  echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $(redis-server --version 2>/dev/null | cut -d' ' -f1-3)"
  echo "settings: DURATION=$DURATION ROUNDS=$ROUNDS CONNECTIONS=$CONNECTIONS KEYS=$KEYS WORKERS=$WORKERS WORK_MS=$WORK_MS STORM_MS=$STORM_MS STORM_CONNECTIONS=$STORM_CONNECTIONS STORM_DURATION=$STORM_DURATION PIN=$PIN"
  echo "loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

read -r -a variants <<<"$VARIANTS"
n=${#variants[@]}
for case in $CASES; do
  echo "$case" >&2
  if [ "$case" = storm ]; then
    # A fresh server per variant: nothing recorded before, and idem's
    # count the layer's outcomes (which costs an event per request, so
    # not in the other cases).
    for v in "${variants[@]}"; do
      main_port=${port[$v]} main_pid=${pid[$v]}
      case $v in idem-*) start "$v" "$v-storm" --count-outcomes ;; *) start "$v" "$v-storm" ;; esac
      measure storm 1 "$v" "$STORM_CONNECTIONS" "$STORM_DURATION" "storm-$run_id-$v"
      kill "${pid[$v]}"
      wait "${pid[$v]}" 2>/dev/null || true
      port[$v]=$main_port pid[$v]=$main_pid
    done
    continue
  fi
  if [[ $case == replay* ]]; then
    # Every key once, and checked: a layered server ran the handler once
    # per key (bare runs it for every request, warm or not).
    for v in "${variants[@]}"; do
      counter=$(counter_of "$case")
      c0=$(calls "$v" "$counter")
      for _ in 1 2 3; do
        "${pin_client[@]}" wrk -t1 -c"$CONNECTIONS" -d2s -s benches/http/replay.lua \
          "http://127.0.0.1:${port[$v]}$(route_of "$case")" -- "$case-$run_id" "$KEYS" >/dev/null
        [ "$v" = bare ] || [ $(($(calls "$v" "$counter") - c0)) -ge "$KEYS" ] && break
      done
      if [ "$v" != bare ] && [ $(($(calls "$v" "$counter") - c0)) -ne "$KEYS" ]; then
        echo "warning: warming $case on $v ran the handler $(($(calls "$v" "$counter") - c0)) times for $KEYS keys" >&2
      fi
    done
  fi
  for round in $(seq "$ROUNDS"); do
    for i in $(seq 0 $((n - 1))); do
      v=${variants[$(((i + round - 1) % n))]}
      if [[ $case == replay* ]]; then
        measure "$case" "$round" "$v" "$CONNECTIONS" "$DURATION" "$case-$run_id" "$KEYS"
      else
        measure "$case" "$round" "$v" "$CONNECTIONS" "$DURATION" "$case-$run_id-$round-$v"
      fi
    done
  done
done
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

python3 - "$results" "$WORK_MS" "$STORM_MS" "$CONNECTIONS" "$DURATION" "$ROUNDS" "$STORM_CONNECTIONS" "$STORM_DURATION" \
  "$KEYS" >"$OUT/tables.md" <<'EOF'
import collections, statistics, sys
path, work_ms, storm_ms, conns, dur, rounds, storm_conns, storm_dur, keys = sys.argv[1:]
rows = []
with open(path) as f:
    next(f)
    for line in f:
        case, rnd, variant, ticks, clk, calls, wrk = line.rstrip('\n').split('\t')
        r = dict(kv.split('=', 1) for kv in wrk.split())
        r.update(case=case, round=int(rnd), variant=variant, ticks=int(ticks), clk=int(clk), calls=int(calls))
        for k in ('requests', 'duration_us', 'p50_us', 'p99_us', 'max_us', 'err_status', 'err_timeout',
                  'err_connect', 'err_read', 'err_write'):
            r[k] = int(r.get(k, 0))
        secs = r['duration_us'] / 1e6 if r['duration_us'] else float('nan')
        r['rps'] = r['requests'] / secs
        r['cpu_us'] = r['ticks'] / r['clk'] * 1e6 / r['requests'] if r['requests'] else float('nan')
        r['cpu_use'] = r['ticks'] / r['clk'] / secs
        rows.append(r)

def ms(us):
    return f"{us / 1000:.2f}" if us < 100_000 else f"{us / 1000:,.0f}"

med = statistics.median
titles = {
    'unique': 'unique keys: POST /payments, a fresh key per request (the handler answers at once)',
    'replay': f'replays: POST /payments over {keys} keys sent once before (the handler answers at once; bare runs it every time)',
    'unique-slow': f'unique keys, slow handler: POST /payments/slow, the handler sleeps {work_ms} ms',
    'replay-slow': f'replays, slow handler: POST /payments/slow over {keys} warmed keys (bare runs the {work_ms} ms handler every time)',
}
order = []
for r in rows:
    if r['variant'] not in order:
        order.append(r['variant'])
by_case = collections.defaultdict(list)
for r in rows:
    by_case[r['case']].append(r)
print(f"wrk -t1 -c{conns} -d{dur}s, {rounds} rounds; requests/s and latencies: median over rounds; "
      "× bare: median of same-round ratios (their range); × bare by CPU: bare's server CPU per request over the variant's, same round; server CPU: user + system per request (redis-server's included for idem-redis), "
      "and CPU use (1.00 = one CPU busy throughout).\n")
for case, title in titles.items():
    rs = by_case.get(case)
    if not rs:
        continue
    print(f"#### {title}\n")
    print("| variant | requests/s | × bare (range) | p50 ms | p99 ms | server CPU µs/req | × bare by CPU | CPU use | handler calls/req | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    bare = {r['round']: r for r in rs if r['variant'] == 'bare'}
    for v in order:
        vr = [r for r in rs if r['variant'] == v]
        if not vr:
            continue
        ratios = [r['rps'] / bare[r['round']]['rps'] for r in vr if r['round'] in bare and bare[r['round']]['rps']]
        ratio = f"{med(ratios):.2f}x" if ratios else '–'
        if ratios and len(ratios) > 1:
            ratio += f" ({min(ratios):.2f}–{max(ratios):.2f})"
        cpu = [bare[r['round']]['cpu_us'] / r['cpu_us'] for r in vr if r['round'] in bare and r['cpu_us'] > 0]
        cpu_ratio = f"{med(cpu):.2f}x" if cpu else '–'
        calls = sum(r['calls'] for r in vr) / max(1, sum(r['requests'] for r in vr))
        print(f"| {v} | {med(r['rps'] for r in vr):,.0f} | {ratio} | {ms(med(r['p50_us'] for r in vr))} | "
              f"{ms(med(r['p99_us'] for r in vr))} | {med(r['cpu_us'] for r in vr):.1f} | {cpu_ratio} | "
              f"{med(r['cpu_use'] for r in vr):.2f} | {calls:.3f} | {sum(r['err_status'] for r in vr)} |")
    print()
rs = by_case.get('storm')
if rs:
    print(f"#### storm: POST /payments/storm, one key, {storm_conns} connections at once for {storm_dur} s "
          f"(the handler sleeps {storm_ms} ms; idem's layer in wait mode)\n")
    print("| variant | requests | handler calls | responses | marked replayed | distinct 2xx bodies | the layer's outcomes | p50 ms | p99 ms | max ms | socket errors |")
    print("|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|")
    for r in rs:
        errs = r['err_connect'] + r['err_read'] + r['err_write'] + r['err_timeout']
        print(f"| {r['variant']} | {r['requests']:,} | {r['calls']:,} | {r.get('statuses', '').replace(',', ', ')} | "
              f"{int(r.get('replayed', 0)):,} | {int(r.get('bodies', 0)):,} | "
              f"{r.get('outcomes', '').replace(',', ', ') or '–'} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | "
              f"{ms(r['max_us'])} | {errs} |")
    print()
EOF
cat "$OUT/tables.md"
