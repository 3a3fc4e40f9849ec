#!/usr/bin/env python3
"""Fails (exit 1) when the top-level modules of a crate import each other in a cycle.

An edge a -> b is any `crate::b` path written in a file of module a (its `a.rs` or `a/` tree),
tests excluded (`tests.rs`, `*_tests.rs`, `tests/` and what follows `#[cfg(test)]` in a file).
Prints every cycle found as `a -> b -> ... -> a` with one file:line per edge.
"""
import os
import re
import sys


def top_module(src, path):
    rel = os.path.relpath(path, src)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def is_test_file(path):
    base = os.path.basename(path)
    return base == "tests.rs" or base.endswith("_tests.rs") or f"{os.sep}tests{os.sep}" in path


def edges(src):
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            if is_test_file(path):
                continue
            a = top_module(src, path)
            if a in ("lib", "main", "bin"):
                continue
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if line.startswith("#[cfg(test)]"):
                        break
                    code = line.split("//", 1)[0]
                    for b in re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", code):
                        if b != a and (os.path.exists(os.path.join(src, b + ".rs")) or os.path.isdir(os.path.join(src, b))):
                            out.setdefault(a, {}).setdefault(b, f"{path}:{n}")
    return out


def cycles(g):
    found, seen = [], set()
    def dfs(node, stack, on):
        for nxt in sorted(g.get(node, {})):
            if nxt in on:
                cyc = stack[stack.index(nxt):] + [nxt]
                key = frozenset(cyc)
                if key not in seen:
                    seen.add(key)
                    found.append(cyc)
            elif len(stack) < 12:
                dfs(nxt, stack + [nxt], on | {nxt})
    for start in sorted(g):
        dfs(start, [start], {start})
    return found


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "daemon/src"
    g = edges(src)
    cyc = cycles(g)
    for c in cyc:
        print("IMPORT CYCLE: " + " -> ".join(c))
        for a, b in zip(c, c[1:]):
            print(f"  {a} -> {b} at {g[a][b]}")
    return 1 if cyc else 0


if __name__ == "__main__":
    sys.exit(main())
