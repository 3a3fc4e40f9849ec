#!/usr/bin/env python3
"""Fails (exit 1) when non-test code under the given source trees reads a clock, a file, a
socket or ambient randomness: the sans-IO crates take time, bytes and randomness as inputs.

Non-test code: files other than tests.rs / *_tests.rs / tests/**, up to the first line that
starts with `#[cfg(test)]`. Comments are ignored. Prints file:line and the call for each hit.
"""
import os
import re
import sys

FORBIDDEN = [
    r"SystemTime::now", r"Instant::now", r"std::fs\b", r"\bfs::(read|write|File|OpenOptions|create|remove|metadata)",
    r"\bFile::(open|create)", r"TcpStream", r"TcpListener", r"UdpSocket", r"UnixStream",
    r"getrandom", r"thread_rng", r"OsRng", r"rand::random", r"std::env::var", r"std::process",
]
PATTERN = re.compile("|".join(FORBIDDEN))


def is_test_file(path):
    base = os.path.basename(path)
    return base == "tests.rs" or base.endswith("_tests.rs") or f"{os.sep}tests{os.sep}" in path


def main():
    hits = []
    for src in sys.argv[1:]:
        for root, _, files in os.walk(src):
            for f in sorted(files):
                path = os.path.join(root, f)
                if not f.endswith(".rs") or is_test_file(path):
                    continue
                with open(path, encoding="utf-8") as fh:
                    for n, line in enumerate(fh, 1):
                        if line.startswith("#[cfg(test)]"):
                            break
                        code = line.split("//", 1)[0]
                        m = PATTERN.search(code)
                        if m:
                            hits.append(f"{path}:{n}: {m.group(0)}")
    for h in hits:
        print("I/O IN A SANS-IO CRATE: " + h)
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
