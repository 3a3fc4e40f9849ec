"""Checks Tanoa's warning-list hits against pymispwarninglists, the reference implementation.

Usage: check_warninglists.py CASES.json

CASES.json (written by the Rust integration test from what a real tanoad answered):
  {"lists_dir": "<misp-warninglists dir, with lists/<name>/list.json>",
   "values": [{"group": "poisonivy", "kind": "domain", "value": "...",
               "flagged": ["dynamic-dns", ...]}, ...]}

One entry per published indicator (a value published by several advisories appears once per
advisory), with the lists the daemon flagged it with (list names are directory names).

The reference: pymispwarninglists.WarningLists(slow_search=True, path_to_repo=lists_dir), whose
`search(value)` is what MISP tooling calls. It never matches `regex` lists (its slow search
returns False for that type), so regex lists are checked here with Python's `re` the way MISP
applies them: PCRE `/pattern/flags`, unanchored search, only for the indicator kinds named by
the list's `matching_attributes` (the same mapping the daemon documents).

Exits 1 with every disagreement listed; on success prints a JSON summary per group.
"""

import json
import re
import sys
from collections import Counter
from pathlib import Path

from pymispwarninglists import WarningLists

# MISP attribute type -> Tanoa indicator kinds (daemon/src/warninglist/mod.rs, kinds_of_attribute).
KINDS_OF_ATTRIBUTE = {
    "ip-src": ["ipv4", "ipv6", "cidr"],
    "ip-dst": ["ipv4", "ipv6", "cidr"],
    "ip-src|port": ["ipv4", "ipv6", "cidr"],
    "ip-dst|port": ["ipv4", "ipv6", "cidr"],
    "domain|ip": ["ipv4", "ipv6", "cidr"],
    "domain": ["domain"],
    "hostname": ["domain"],
    "hostname|port": ["domain"],
    "url": ["url"],
    "uri": ["url"],
    "link": ["url"],
    "email": ["email"],
    "email-src": ["email"],
    "email-dst": ["email"],
    "target-email": ["email"],
    "whois-registrant-email": ["email"],
    "dns-soa-email": ["email"],
    "email-reply-to": ["email"],
    "md5": ["md5"],
    "filename|md5": ["md5"],
    "sha1": ["sha1"],
    "filename|sha1": ["sha1"],
    "x509-fingerprint-sha1": ["sha1"],
    "sha256": ["sha256"],
    "filename|sha256": ["sha256"],
    "x509-fingerprint-sha256": ["sha256"],
    "sha512": ["sha512"],
    "filename|sha512": ["sha512"],
    "filename": ["filename"],
    "vulnerability": ["cve"],
    "AS": ["asn"],
}
ALL_KINDS = {"ipv4", "ipv6", "cidr", "domain", "url", "email", "md5", "sha1", "sha256",
             "sha512", "cve", "filename", "asn"}


def pcre(entry):
    """A MISP regex entry as a compiled Python regex (None when not usable)."""
    if not entry:
        return None
    delim = entry[0]
    closing = {"(": ")", "{": "}", "[": "]", "<": ">"}.get(delim, delim)
    pattern, flags = entry, ""
    if not delim.isalnum() and delim != "\\" and not delim.isspace():
        end = entry.rfind(closing)
        if end > 0:
            pattern, flags = entry[1:end], entry[end + 1:]
    f = 0
    for c in flags:
        if c == "i":
            f |= re.IGNORECASE
        elif c == "m":
            f |= re.MULTILINE
        elif c == "s":
            f |= re.DOTALL
        elif c == "x":
            f |= re.VERBOSE
        elif c in "ug":
            pass
        else:
            return None
    try:
        return re.compile(pattern, f)
    except re.error:
        return None


def fail(msg):
    print(f"check_warninglists: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 2:
        fail("usage: check_warninglists.py CASES.json")
    cases = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    lists_dir = Path(cases["lists_dir"])
    wl = WarningLists(slow_search=True, path_to_repo=lists_dir)

    # pymispwarninglists names lists by their "name"; the daemon by directory name.
    slug_of = {}
    regex_lists = []
    for f in sorted((lists_dir / "lists").glob("*/list.json")):
        data = json.loads(f.read_text(encoding="utf-8"))
        slug_of[data["name"]] = f.parent.name
        if data["type"] == "regex":
            kinds = set()
            for a in data.get("matching_attributes") or []:
                kinds.update(KINDS_OF_ATTRIBUTE.get(a, []))
            if not data.get("matching_attributes"):
                kinds = set(ALL_KINDS)
            compiled = [p for p in (pcre(e) for e in data["list"]) if p is not None]
            regex_lists.append((f.parent.name, kinds, compiled))
    if len(slug_of) != len(wl):
        fail(f"{len(wl)} lists loaded by pymispwarninglists, {len(slug_of)} names on disk")

    problems = []
    groups = {}
    pymisp_regex_hits = 0
    regex_names = {name for name, _, _ in regex_lists}
    for case in cases["values"]:
        value, kind = case["value"], case["kind"]
        reference = {slug_of[w.name] for w in wl.search(value)}
        pymisp_regex_hits += len(reference & regex_names)
        for name, kinds, compiled in regex_lists:
            if kind in kinds and any(p.search(value) for p in compiled):
                reference.add(name)
        ours = set(case["flagged"])
        if ours != reference:
            problems.append(
                f"{kind} {value!r}: tanoad flagged {sorted(ours)}, reference {sorted(reference)}")
        g = groups.setdefault(case["group"], {"values": 0, "flagged": 0, "distinct": set(),
                                              "by_lists": Counter(), "by_list": Counter()})
        g["values"] += 1
        if reference:
            g["flagged"] += 1
            g["distinct"].add(value)
            g["by_lists"]["+".join(sorted(reference))] += 1
            for name in reference:
                g["by_list"][name] += 1
    if problems:
        fail(f"{len(problems)} disagreement(s):\n" + "\n".join(problems))

    summary = {
        "lists": len(wl),
        "regex_lists": sorted(regex_names),
        "pymisp_regex_hits": pymisp_regex_hits,
        "groups": {
            name: {
                "values": g["values"],
                "flagged": g["flagged"],
                "flagged_distinct": len(g["distinct"]),
                "by_lists": dict(sorted(g["by_lists"].items())),
                "by_list": dict(sorted(g["by_list"].items())),
            }
            for name, g in sorted(groups.items())
        },
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
