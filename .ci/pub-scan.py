#!/usr/bin/env python3
"""Lists `pub` items of the daemon's pub modules whose name appears in no other crate."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else '.'
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
                    print(f'{p}:{n}: {mm.group(1)} {name}')
