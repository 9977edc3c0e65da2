"""Allocation sites of idem's layer from a DHAT profile of http_allocs:

    valgrind --tool=dhat --dhat-out-file=/tmp/dhat.json \\
      target/prof/release/http_allocs --calls 4000 --only idem-memory --case unique
    python3 benches/http/dhat_sites.py /tmp/dhat.json 8000

(8000 calls: the warm-up's and the measured ones.) Each allocation is
charged to the innermost frame of idem, idem-http or this crate on its
stack, with the library call below it; sites under 0.2 allocations per call
are left out. Build http_allocs with debuginfo (benches/http_perf.sh's
target/prof) for inlined frames.
"""
import collections
import json
import re
import sys

path, calls = sys.argv[1], int(sys.argv[2])
d = json.load(open(path))
frames_table = d['ftbl']


def frame(i):
    m = re.match(r'0x[0-9A-Fa-f]+: (.*?) \((?:in )?(.*)\)$', frames_table[i])
    return (m.group(1), m.group(2).split('/')[-1]) if m else (frames_table[i], '')


ours = re.compile(r'idem(_http)?::|idem_benches::|http_allocs')
library = re.compile(r'^(<)?(alloc|core|std|hashbrown|bytes|http|serde_json|serde|tokio|stats_alloc)::|^(malloc|realloc|calloc|__rust|__rdl)')
allocator = re.compile(r'^(malloc|realloc|calloc|__rust|__rdl|<?stats_alloc|<?alloc::(alloc|raw_vec))')
sites = collections.defaultdict(lambda: [0, 0])
for pp in d['pps']:
    fs = [frame(i) for i in pp['fs']]
    if not any('idem' in name for name, _ in fs):
        continue
    site = ('?', '', '')
    for k, (name, loc) in enumerate(fs):
        if ours.search(name) and not library.match(name):
            below = next((fs[j][0] for j in range(k - 1, -1, -1) if not allocator.match(fs[j][0])), '')
            site = (name, loc, below)
            break
    sites[site][0] += pp['tbk']
    sites[site][1] += pp['tb']
total = [sum(v[0] for v in sites.values()), sum(v[1] for v in sites.values())]
print(f'{total[0] / calls:.1f} allocations, {total[1] / calls:,.0f} bytes per call with an idem frame\n')
print('allocs/call  bytes/call  site [file:line]  <- library call')
for (name, loc, below), (blocks, size) in sorted(sites.items(), key=lambda kv: -kv[1][1]):
    if blocks / calls >= 0.2:
        print(f'{blocks / calls:11.2f} {size / calls:11,.0f}  {name[:100]} [{loc}]  <- {below[:80]}')
