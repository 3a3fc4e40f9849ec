#!/usr/bin/env python3
"""Lists `pub` items of the daemon's pub modules whose name appears in no other crate.

With --check: fails (exit 1) on any such item not in `.ci/pub-allowed` (the items a public
signature needs), and on allowed names that are no longer found (keep the list true).
"""
import os, re, sys
args = [a for a in sys.argv[1:] if a != '--check']
check = '--check' in sys.argv[1:]
root = args[0] if args else '.'
mods = ['api', 'client', 'config', 'node', 'peer_link', 'publish', 'roster', 'store', 'transport', 'fuzzing']
outside = []
for d in ['cli', 'integration-tests', 'daemon/sim', 'daemon/benches', 'daemon/src/bin', 'fuzz/fuzz_targets', 'daemon/pki']:
    for dp, _, fs in os.walk(os.path.join(root, d)):
        if '/target' in dp:
            continue
        for f in fs:
            if f.endswith('.rs'):
                outside.append(open(os.path.join(dp, f)).read())
text = '\n'.join(outside)
item = re.compile(r'^\s*pub (?:async )?(?:const )?(fn|struct|enum|trait|type|const|static|mod) (\w+)')
found = []
for m in mods:
    paths = []
    base = os.path.join(root, 'daemon/src', m)
    if os.path.isfile(base + '.rs'):
        paths.append(base + '.rs')
    if os.path.isdir(base):
        for dp, _, fs in os.walk(base):
            paths += [os.path.join(dp, f) for f in fs if f.endswith('.rs')]
    for p in sorted(paths):
        in_test = False
        for n, line in enumerate(open(p), 1):
            if re.match(r'\s*#\[cfg\(test\)\]', line):
                in_test = True
            mm = item.match(line)
            if mm and not in_test:
                name = mm.group(2)
                if not re.search(r'\b%s\b' % re.escape(name), text):
                    found.append((f'{p}:{n}: {mm.group(1)} {name}', name))

if not check:
    for line, _ in found:
        print(line)
    sys.exit(0)
allowed = set()
for line in open(os.path.join(root, '.ci/pub-allowed')):
    line = line.split('#', 1)[0].strip()
    if line:
        allowed.add(line)
bad = [line for line, name in found if name not in allowed]
stale = sorted(allowed - {name for _, name in found})
for line in bad:
    print(f'PUB NOT USED OUTSIDE THE DAEMON: {line} (make it pub(crate), or list it in .ci/pub-allowed with the public signature that needs it)')
for name in stale:
    print(f'STALE in .ci/pub-allowed: {name} (no longer a pub item unused outside; remove it)')
if bad or stale:
    sys.exit(1)
print(f'public surface check passed ({len(found)} allowed items)')
