#!/usr/bin/env python3
"""Benchmark: pages a TAXII 2.1 collection with the independent client (taxii2-client,
`taxii2client.v21.as_pages(collection.get_objects, per_request=N)`) and prints one JSON line
{"server", "objects", "seconds", "pages", ...}. Used by `integration-tests/benches/interop.rs`
(`cargo bench -p tanoa-integration-tests --bench interop`); not a test.

Two modes, the same client calls:

  bench_taxii.py tanoa --url http://127.0.0.1:PORT/taxii2/ --user NAME --password TOKEN
                       --collection green --expect BUNDLE [--per-request 50] [--max-seconds S]
      Pages Tanoa's collection `green` (by alias) and checks that it received exactly the ids of
      the objects of BUNDLE (a STIX bundle, e.g. `tanoa export --format stix` of the same
      holdings), each exactly once (or, when paging was stopped after S seconds, that nothing
      was repeated and everything received is in BUNDLE; "complete" says which).

  bench_taxii.py medallion --bundle BUNDLE [--load N] [--max-seconds S] [--per-request 50]
      Starts medallion 3.0.0 (memory backend) with the first N objects of BUNDLE (default: all)
      in one collection, pages it, and checks that every loaded object was received exactly
      once (or, when paging was stopped after S seconds, that nothing was repeated and
      everything received was loaded; "complete" says which).

Medallion's data file is laid out for speed (read medallion/backends/memory_backend.py and
filters/basic_filter.py): the memory backend's paging compares every manifest entry with every
object (quadratic), so the collection has an EMPTY manifest and each object carries a
`date_added` property instead (the backend's own fallback: with no manifest it sorts the
objects by their own `date_added`). That property is then returned with each object (it is not
STIX; the check ignores it). Other costs that no layout avoids and that grow with the size of
the collection: every request deep-copies all objects of the API root twice (collection exists
/ may be read), the first request also deep-copies them twice more and compares every object
with every other when no `match[spec_version]` is given (`filter_by_spec_version`), and each
page pops from the front of a Python list. The paging session timeout is raised to one hour
(the default, 30 s, would expire a long session).

Exits 0 printing JSON on success; exits 1 naming the failed check.
"""

import argparse
import collections
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import requests
from taxii2client.v21 import Server, as_pages

MEDIA_TAXII = "application/taxii+json;version=2.1"


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def page(collection, per_request, max_seconds=None):
    """Pages get_objects with as_pages; returns (objects, pages, seconds, first_page_seconds,
    complete)."""
    objects = []
    pages = 0
    first = None
    complete = True
    t0 = time.monotonic()
    for env in as_pages(collection.get_objects, per_request=per_request):
        pages += 1
        if first is None:
            first = time.monotonic() - t0
        got = env.get("objects", [])
        check(len(got) <= per_request, f"page {pages} has {len(got)} > {per_request} objects")
        if env.get("more", False):
            check(len(got) == per_request, f"page {pages}: more=true with {len(got)} objects")
            check(env.get("next"), f"page {pages}: more=true and no next")
        objects.extend(got)
        if env.get("more", False) and max_seconds is not None and time.monotonic() - t0 > max_seconds:
            complete = False
            break
    return objects, pages, time.monotonic() - t0, first or 0.0, complete


def verify(objects, want_ids, complete):
    """Each received id once; exactly want_ids when complete, a subset otherwise."""
    ids = [o["id"] for o in objects]
    repeated = [k for k, n in collections.Counter(ids).items() if n > 1]
    check(not repeated, f"{len(repeated)} objects received more than once, e.g. {repeated[:3]}")
    got = set(ids)
    extra = sorted(got - want_ids)
    check(not extra, f"{len(extra)} objects received that should not be there, e.g. {extra[:3]}")
    if complete:
        missing = sorted(want_ids - got)
        check(not missing, f"{len(missing)} objects never received, e.g. {missing[:3]}")


def bundle_objects(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    check(doc.get("type") == "bundle", f"{path}: not a STIX bundle")
    return doc["objects"]


def latest_ids(objects):
    return {o["id"] for o in objects}


def result(server, objects, pages, seconds, first, complete, loaded, per_request):
    return {
        "server": server,
        "objects": len(objects),
        "pages": pages,
        "seconds": round(seconds, 3),
        "first_page_seconds": round(first, 3),
        "objects_per_second": round(len(objects) / seconds, 1) if seconds > 0 else None,
        "complete": complete,
        "collection_objects": loaded,
        "per_request": per_request,
    }


# ---------------------------------------------------------------------------------------------
# Tanoa


def bench_tanoa(args):
    want = latest_ids(bundle_objects(args.expect))
    t0 = time.monotonic()
    server = Server(args.url, user=args.user, password=args.password)
    root = server.default or server.api_roots[0]
    colls = {c.alias: c for c in root.collections}
    check(args.collection in colls, f"tanoa: collection {args.collection} not listed ({sorted(colls)})")
    objects, pages, seconds, first, complete = page(
        colls[args.collection], args.per_request, args.max_seconds)
    session = time.monotonic() - t0
    verify(objects, want, complete)
    out = result("tanoa", objects, pages, seconds, first, complete, len(want), args.per_request)
    # Discovery, API root and collection list included (what a SIEM's poll costs).
    out["session_seconds"] = round(session, 3)
    return out


# ---------------------------------------------------------------------------------------------
# medallion


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def date_added(i):
    """Distinct, increasing, fixed-width timestamps (medallion sorts the strings)."""
    secs, micros = divmod(i, 1_000_000)
    mins, secs = divmod(secs, 60)
    return f"2026-01-01T00:{mins:02d}:{secs:02d}.{micros:06d}Z"


def medallion_data(base, objects):
    root = "bench"
    loaded = []
    for i, o in enumerate(objects):
        o = dict(o)
        o["date_added"] = date_added(i)
        loaded.append(o)
    return {
        "/discovery": {
            "title": "medallion (benchmark)",
            "description": "Tanoa's interop benchmark",
            "default": f"{base}/{root}/",
            "api_roots": [f"{base}/{root}/"],
        },
        root: {
            "information": {
                "title": "Benchmark",
                "description": "The objects of one Tanoa export",
                "versions": [MEDIA_TAXII],
                "max_content_length": 104857600,
            },
            "status": [],
            "collections": [
                {
                    "id": "5f6b4c1e-0a8d-4c3b-9e2f-7d1a6b3c4e50",
                    "title": "bench",
                    "description": "Every object of the export",
                    "can_read": True,
                    "can_write": False,
                    "media_types": ["application/stix+json;version=2.1"],
                    # Empty on purpose: see the module doc.
                    "manifest": [],
                    "objects": loaded,
                }
            ],
        },
    }


def bench_medallion(args):
    objects = bundle_objects(args.bundle)
    if args.load is not None:
        objects = objects[: args.load]
    want = latest_ids(objects)
    check(len(want) == len(objects), "the bundle holds several versions of one id")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    user, password = "bench", "bench-password"
    with tempfile.TemporaryDirectory(prefix="tanoa-bench-medallion-") as work:
        data_path = os.path.join(work, "data.json")
        with open(data_path, "w", encoding="utf-8") as f:
            json.dump(medallion_data(base, objects), f)
        config = {
            "backend": {
                "module": "medallion.backends.memory_backend",
                "module_class": "MemoryBackend",
                "filename": data_path,
                "session_timeout": 3600,
            },
            "users": {user: password},
            "taxii": {"max_page_size": 1000},
        }
        config_path = os.path.join(work, "config.json")
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump(config, f)
        log_path = os.path.join(work, "medallion.log")
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "medallion.scripts.run", "--host", "127.0.0.1",
                 "--port", str(port), config_path],
                stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 120
                while True:
                    if proc.poll() is not None:
                        with open(log_path, encoding="utf-8") as f:
                            tail = f.read()[-2000:]
                        raise CheckFailed(f"medallion exited with {proc.returncode}:\n{tail}")
                    try:
                        requests.get(base + "/taxii2/", timeout=1)
                        break
                    except requests.exceptions.RequestException:
                        check(time.monotonic() < deadline, "medallion did not answer within 120 s")
                        time.sleep(0.1)
                server = Server(base + "/taxii2/", user=user, password=password)
                root = server.default or server.api_roots[0]
                colls = root.collections
                check(len(colls) == 1, f"medallion: {len(colls)} collections")
                got, pages, seconds, first, complete = page(colls[0], args.per_request, args.max_seconds)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    verify(got, want, complete)
    return result("medallion", got, pages, seconds, first, complete, len(objects), args.per_request)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("tanoa", help="page Tanoa's endpoint")
    t.add_argument("--url", required=True, help="discovery URL")
    t.add_argument("--user", required=True)
    t.add_argument("--password", required=True, help="the client's token")
    t.add_argument("--collection", default="green", help="collection alias")
    t.add_argument("--expect", required=True, help="STIX bundle with exactly the expected objects")
    t.add_argument("--per-request", type=int, default=50)
    t.add_argument("--max-seconds", type=float, help="stop paging after this long")
    m = sub.add_parser("medallion", help="start medallion on a bundle and page it")
    m.add_argument("--bundle", required=True, help="STIX bundle whose objects medallion serves")
    m.add_argument("--load", type=int, help="load only the first N objects")
    m.add_argument("--max-seconds", type=float, help="stop paging after this long")
    m.add_argument("--per-request", type=int, default=50)
    args = ap.parse_args()
    try:
        out = bench_tanoa(args) if args.mode == "tanoa" else bench_medallion(args)
    except CheckFailed as e:
        print(f"bench_taxii: FAILED: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
