#!/usr/bin/env python3
"""Checks a MISP feed directory written by `tanoa export --format misp` with PyMISP.

Usage: check_misp.py --feed DIR [--original EVENT.json ...]

1. Every event of the feed loads with PyMISP (`MISPEvent().load_file`), its uuid is the one
   its file name and the manifest give, and PyMISP can turn it back into a feed event
   (`MISPEvent.to_feed(with_meta=True)`).
2. manifest.json lists exactly the event files of the directory, and each entry equals the
   one PyMISP computes for the event (`MISPEvent.manifest`, as `pymisp.tools.feed` does).
3. hashes.csv holds exactly the lines PyMISP's `feed_meta_generator` writes: the md5 of every
   attribute value (per part for composite types) with the event uuid.
4. For each --original MISP event: the exported event with the same uuid has the same
   attributes, top level and in objects, compared one by one on uuid, type, category, value,
   to_ids and comment, both as raw JSON strings (byte-exact: backslashes, CR/LF) and as PyMISP
   loads them; and the same info, date, Orgc and non-TLP tags.

Exits 1 with a message on the first failed check; prints a JSON summary on success.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import pymisp
from pymisp import MISPEvent

FIELDS = ("uuid", "type", "category", "value", "to_ids", "comment")


def fail(msg: str) -> None:
    print(f"check_misp: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def unwrap(doc: dict) -> dict:
    if "response" in doc and isinstance(doc["response"], list):
        doc = doc["response"][0]
    return doc.get("Event", doc)


def raw_attributes(event: dict) -> list[tuple[str, dict]]:
    out = [(f"Attribute[{i}]", a) for i, a in enumerate(event.get("Attribute", []))]
    for j, o in enumerate(event.get("Object", [])):
        out += [(f"Object[{j}].Attribute[{i}]", a) for i, a in enumerate(o.get("Attribute", []))]
    return out


def pymisp_attributes(ev: MISPEvent) -> list:
    out = list(ev.attributes)
    for o in ev.objects:
        out += list(o.attributes)
    return out


def check_feed(feed: Path) -> tuple[dict[str, MISPEvent], dict[str, dict], int]:
    manifest_path = feed / "manifest.json"
    hashes_path = feed / "hashes.csv"
    if not manifest_path.is_file():
        fail(f"{manifest_path} is missing")
    if not hashes_path.is_file():
        fail(f"{hashes_path} is missing")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if not isinstance(manifest, dict):
        fail("manifest.json is not an object")
    files = {p.stem for p in feed.glob("*.json") if p.name != "manifest.json"}
    if files != set(manifest):
        fail(f"manifest.json lists {sorted(manifest)} but the event files are {sorted(files)}")

    events: dict[str, MISPEvent] = {}
    raw: dict[str, dict] = {}
    expected_hashes: list[str] = []
    for uuid in sorted(manifest):
        path = feed / f"{uuid}.json"
        ev = MISPEvent()
        try:
            ev.load_file(str(path))
        except Exception as e:  # noqa: BLE001 - any refusal by PyMISP is a failed check
            fail(f"PyMISP cannot load {path.name}: {type(e).__name__}: {e}")
        if ev.uuid != uuid:
            fail(f"{path.name} holds event {ev.uuid}")
        doc = json.loads(path.read_text(encoding="utf-8"))
        if set(doc) != {"Event"}:
            fail(f"{path.name} is not {{\"Event\": {{...}}}} (members {sorted(doc)})")
        try:
            ev.to_feed(with_meta=True)
        except Exception as e:  # noqa: BLE001
            fail(f"PyMISP cannot turn {path.name} into a feed event: {type(e).__name__}: {e}")
        # The manifest entry PyMISP computes (json round trip: PyMISP may hold ints as str).
        want = json.loads(json.dumps(ev.manifest[uuid], default=str))
        got = manifest[uuid]
        if got != want:
            fail(f"manifest entry of {uuid} differs from PyMISP's:\n ours   {got}\n pymisp {want}")
        expected_hashes += [f"{h},{ev.uuid}" for h in ev.attributes_hashes("md5")]
        events[uuid] = ev
        raw[uuid] = doc["Event"]

    lines = [l for l in hashes_path.read_text(encoding="utf-8").splitlines() if l]
    if collections.Counter(lines) != collections.Counter(expected_hashes):
        missing = collections.Counter(expected_hashes) - collections.Counter(lines)
        extra = collections.Counter(lines) - collections.Counter(expected_hashes)
        fail(f"hashes.csv differs from PyMISP's feed generator: missing {list(missing)[:5]}, "
             f"unexpected {list(extra)[:5]}")
    # Every line: md5 of a value of that event.
    for line in lines:
        h, _, uuid = line.partition(",")
        if uuid not in manifest or len(h) != 32:
            fail(f"hashes.csv line {line!r} names no event of the manifest")
    return events, raw, len(lines)


def non_tlp_tags(event: dict) -> list[str]:
    names = []
    for t in event.get("Tag", []):
        name = t.get("name") if isinstance(t, dict) else t
        if not str(name).lower().startswith("tlp:"):
            names.append(name)
    return names


def compare(original_path: Path, events: dict[str, MISPEvent], raw: dict[str, dict]) -> dict:
    doc = json.loads(original_path.read_text(encoding="utf-8"))
    orig = unwrap(doc)
    uuid = orig.get("uuid")
    if uuid not in raw:
        fail(f"{original_path.name}: event {uuid} is not in the feed (events: {sorted(raw)})")
    exported = raw[uuid]
    for key in ("info", "date", "threat_level_id", "analysis", "Orgc"):
        if key in orig and orig[key] != exported.get(key):
            fail(f"event {uuid}: {key} {exported.get(key)!r} != original {orig[key]!r}")
    if non_tlp_tags(orig) != non_tlp_tags(exported):
        fail(f"event {uuid}: tags {non_tlp_tags(exported)} != original {non_tlp_tags(orig)}")

    oa, ea = raw_attributes(orig), raw_attributes(exported)
    if len(oa) != len(ea):
        fail(f"event {uuid}: {len(ea)} attributes exported, {len(oa)} in the original")
    backslash = crlf = 0
    for (path, a), (_, b) in zip(oa, ea):
        for f in FIELDS:
            if f in a and a[f] != b.get(f):
                fail(f"event {uuid} {path} (uuid {a.get('uuid')}): {f} {b.get(f)!r} != original {a[f]!r}")
        v = a.get("value", "")
        if isinstance(v, str):
            if v.encode("utf-8") != b["value"].encode("utf-8"):
                fail(f"event {uuid} {path}: value bytes differ")
            backslash += "\\" in v
            crlf += "\r\n" in v

    # The same, as PyMISP reads both files.
    po = MISPEvent()
    po.load(doc)
    pa, pe = pymisp_attributes(po), pymisp_attributes(events[uuid])
    if len(pa) != len(pe):
        fail(f"event {uuid}: PyMISP sees {len(pe)} attributes exported, {len(pa)} in the original")
    for a, b in zip(pa, pe):
        for f in FIELDS:
            if getattr(a, f, None) != getattr(b, f, None):
                fail(f"event {uuid} attribute {a.uuid}: PyMISP {f} {getattr(b, f, None)!r} != "
                     f"original {getattr(a, f, None)!r}")
    return {"event": uuid, "attributes": len(oa), "with_backslash": backslash, "with_crlf": crlf}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feed", required=True, type=Path)
    ap.add_argument("--original", action="append", default=[], type=Path)
    args = ap.parse_args()

    events, raw, hashes = check_feed(args.feed)
    compared = [compare(p, events, raw) for p in args.original]
    attrs = sum(len(pymisp_attributes(e)) for e in events.values())
    print(json.dumps({
        "pymisp": pymisp.__version__,
        "events": len(events),
        "attributes": attrs,
        "hashes": hashes,
        "compared": compared,
        "compared_attributes": sum(c["attributes"] for c in compared),
        "with_backslash": sum(c["with_backslash"] for c in compared),
        "with_crlf": sum(c["with_crlf"] for c in compared),
    }))


if __name__ == "__main__":
    main()
