#!/usr/bin/env bash
# Issue 8: what a claim costs the Redis server, script by script. Each
# claim runs on fresh random keys (the first-execution path: no record, no
# lease), from 16 redis-benchmark clients; the server's execution time per
# call comes from INFO commandstats (usec_per_call of the EVALSHA, its own
# commands included; reading and parsing the request not included).
#
#   bash benches/redis_scripts.sh            # N=100000 claims per variant, 2 rounds
#
# Variants: an empty script (Lua's floor), SET NX PX (the naive design's
# claim), the `idempotent` crate's claim script (read from the crate's
# source that cargo downloaded), idem-redis's claim script (read from
# idem-redis/src/scripts.rs), and that script without its `TIME` call,
# and without its fencing key (GET + SET of `:f`). The last two are
# experiments, not designs: they only show where the time goes.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}
ROUNDS=${ROUNDS:-2}
dir=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$dir"' EXIT

python3 - "$dir" <<'EOF'
import json, re, subprocess, sys
out = sys.argv[1]
s = open('idem-redis/src/scripts.rs').read()
helpers = re.search(r'macro_rules! lua_helpers \{\s*\(\) => \{\s*r#"(.*?)"#', s, re.S).group(1)
claim = helpers + re.search(r'const CLAIM: &str = concat!\(\s*lua_helpers!\(\),\s*r#"(.*?)"#', s, re.S).group(1)
no_time = claim.replace("local t = redis.call('TIME')\nlocal fence = tonumber(t[1]) * 1000000 + tonumber(t[2])", "local fence = 1")
no_fence_key = claim.replace("local last = redis.call('GET', KEYS[3])", "local last = nil").replace("set_fence(KEYS[3], fs, 2 * ms)", "")
assert claim != no_time and claim != no_fence_key, "idem-redis's claim script changed: update this experiment"
meta = json.loads(subprocess.check_output(
    ['cargo', 'metadata', '--format-version', '1', '--locked'], stderr=subprocess.DEVNULL))
crate = next(p for p in meta['packages'] if p['name'] == 'idempotent')
crate_dir = crate['manifest_path'].rsplit('/', 1)[0]
files = {
    'empty': 'return 1\n',
    'crate_claim': open(crate_dir + '/src/store/valkey/scripts/claim.lua').read(),
    'idem_claim': claim,
    'idem_claim_no_time': no_time,
    'idem_claim_no_fence_key': no_fence_key,
}
for name, text in files.items():
    open(f'{out}/{name}.lua', 'w').write(text)
EOF

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --dir "$dir" --logfile "$dir/redis.log" &
server=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
cli() { redis-cli -p "$port" "$@"; }

owner=0123456789abcdef0123456789abcdef
measure() { # label, command...
  local label=$1; shift
  cli flushall >/dev/null
  cli config resetstat >/dev/null
  redis-benchmark -p "$port" -c 16 -n "$N" -r 100000000 -q "$@" >/dev/null
  local cmd
  cmd=$(echo "$1" | tr '[:upper:]' '[:lower:]')
  local usec
  usec=$(cli info commandstats | tr -d '\r' | grep "^cmdstat_$cmd:" | sed 's/.*usec_per_call=\([0-9.]*\).*/\1/')
  local inner
  inner=$(cli info commandstats | tr -d '\r' | grep -v "^cmdstat_\($cmd\|info\|config|resetstat\|config|get\):" \
    | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\).*/\1 \2/p' \
    | awk -v n="$N" '$2 / n >= 0.005 { printf "%s%s %.2f", sep, $1, $2 / n; sep = ", " }')
  printf '| %s | %s | %s |\n' "$label" "$usec" "${inner:-–}"
}

echo "| claim (fresh key) | server µs per call | commands inside, per call |"
echo "|---|---:|---|"
for _ in $(seq "$ROUNDS"); do
  for v in empty crate_claim idem_claim idem_claim_no_time idem_claim_no_fence_key; do
    sha=$(cli script load "$(cat "$dir/$v.lua")")
    case $v in
      empty) measure "$v" EVALSHA "$sha" 0 ;;
      crate_claim) measure "$v" EVALSHA "$sha" 1 'c:__rand_int__' \
        0123456789012345678901234567890123456789 12345678901234 3600000 ;;
      *) measure "$v" EVALSHA "$sha" 3 'r:__rand_int__' 'l:__rand_int__' 'f:__rand_int__' \
        "$owner" 0 30000 ;;
    esac
  done
  measure set_nx_px SET 'n:__rand_int__' x NX PX 30000
done
