"""Self time per request, by component, of two perf profiles of the load-test
server (benches/http_perf.sh): bare and idem-memory, and the symbols whose
time grew most.

    python3 benches/http/perf_diff.py DIR [TOP]

DIR holds bare.data, bare.result, idem-memory.data, idem-memory.result (wrk's
RESULT line, then ticks= and clk_tck= of the server during the profile).
Samples are spread over the process's CPU time (user + system ticks), then
divided by the requests wrk completed.
"""
import collections
import re
import subprocess
import sys

out_dir = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 25


def load(variant):
    res = open(f'{out_dir}/{variant}.result').read()
    requests = int(re.search(r'requests=(\d+)', res).group(1))
    ticks = int(re.search(r'ticks=(\d+)', res).group(1))
    clk = int(re.search(r'clk_tck=(\d+)', res).group(1))
    report = subprocess.run(
        ['perf', 'report', '-i', f'{out_dir}/{variant}.data', '--no-children', '--sort', 'dso,symbol',
         '--stdio', '-F', 'sample,dso,symbol', '--percent-limit', '0'],
        capture_output=True, text=True, check=True).stdout
    symbols = collections.Counter()
    for line in report.splitlines():
        m = re.match(r'\s*(\d+)\s+(\S+)\s+\[(.)\]\s+(.*)$', line)
        if not m or line.startswith('#'):
            continue
        name = re.sub(r'\s+-\s+-$', '', m.group(4).strip()).strip()
        symbols[(m.group(3), name)] += int(m.group(1))
    total = sum(symbols.values())
    ns_per_request = ticks / clk * 1e9 / requests
    return {k: n / total * ns_per_request for k, n in symbols.items()}, ns_per_request, requests


def component(kind, s):
    if kind == 'k':
        return 'kernel'
    rules = [
        (r'malloc|_int_free|cfree|realloc|unlink_chunk|__rdl_|__rust_alloc|__rust_dealloc|memalign', 'malloc/free'),
        (r'memmove|memcpy|memset|memcmp', 'memcpy/memcmp'),
        (r'getrandom', 'getrandom'),
        (r'^idem_http::fingerprint', 'idem-http: fingerprint'),
        (r'idem_http::', 'idem-http: the rest'),
        (r'idem::store::memory', 'idem: MemoryStore'),
        (r'idem::durable', 'idem: durable'),
        (r'idem::(table|flight|work)', 'idem: local table'),
        (r'idem::', 'idem: the rest'),
        (r'hashbrown|sip::Hasher|hash_one|BuildHasher', 'hash maps, SipHash'),
        (r'serde', 'serde, serde_json'),
        (r'tokio::sync', 'tokio: sync (watch, Notify)'),
        (r'tokio', 'tokio: tasks, I/O, timers'),
        (r'hyper', 'hyper'),
        (r'axum|tower', 'axum, tower'),
        (r'http::|bytes::', 'http, bytes'),
        (r'fmt', 'formatting'),
    ]
    for pattern, name in rules:
        if re.search(pattern, s):
            return name
    return 'other'


bare, bare_ns, bare_req = load('bare')
idem, idem_ns, idem_req = load('idem-memory')
print(f'CPU per request (perf running): bare {bare_ns:,.0f} ns ({bare_req:,} requests), '
      f'idem-memory {idem_ns:,.0f} ns ({idem_req:,} requests)\n')
groups = collections.defaultdict(lambda: [0.0, 0.0])
for (kind, s), ns in bare.items():
    groups[component(kind, s)][0] += ns
for (kind, s), ns in idem.items():
    groups[component(kind, s)][1] += ns
print('| self time in | bare ns/request | idem-memory ns/request | difference |')
print('|---|---:|---:|---:|')
for name, (b, i) in sorted(groups.items(), key=lambda kv: kv[1][0] - kv[1][1]):
    print(f'| {name} | {b:,.0f} | {i:,.0f} | {i - b:+,.0f} |')
print(f'| total | {bare_ns:,.0f} | {idem_ns:,.0f} | {idem_ns - bare_ns:+,.0f} |\n')
print('Symbols whose self time grew most (ns/request: difference, bare, idem-memory):\n')
keys = set(bare) | set(idem)
for k in sorted(keys, key=lambda k: bare.get(k, 0) - idem.get(k, 0))[:top]:
    b, i = bare.get(k, 0), idem.get(k, 0)
    print(f'    {i - b:+7.0f} {b:7.0f} {i:7.0f}  [{k[0]}] {k[1][:120]}')
