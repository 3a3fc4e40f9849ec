#!/usr/bin/env python3
"""Reads a TAXII 2.1 server with the independent client (taxii2-client, taxii2client.v21) and
checks that every collection holds exactly the expected objects, paging with as_pages.

The same client calls run against Tanoa's endpoint (expectations given by the Rust test) and,
with --medallion, against medallion, the OASIS reference server (from PyPI), started here on
its own test data (testdata/taxii21-medallion) with expectations computed from that data.

Usage:
  check_taxii.py --url http://127.0.0.1:PORT/taxii2/ --expect expect.json
                 [--medallion DIR] [--per-request 50]

expect.json:
  {"clients": {"<name>": {"token": "...", "collections": ["clear", ...]}},
   "reader": "<name of the client that reads every collection in full>",
   "collections": {"<alias>": ["<stix id>", ...]},       # latest versions: the ids, exactly
   "all_versions": {"<alias>": [["<id>", "<version>"], ...]},   # optional, match[version]=all
   "versions": {"<alias>": {"<id>": ["<version>", ...]}},        # optional, versions endpoint
   "forbidden_ids": ["<id>", ...],                   # must appear in no collection (TLP:RED)
   "shared_date_added": {"<alias>": N}}              # at least N objects share one date_added

Exits 0 and prints a JSON summary when every check passes; exits 1 naming the failed check.
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
from taxii2client.exceptions import AccessError
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

MEDIA_TAXII = "application/taxii+json;version=2.1"


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def http_status(fn):
    """Runs fn; returns the HTTP status of the requests.HTTPError it raises (None if none)."""
    try:
        fn()
    except requests.exceptions.HTTPError as e:
        return e.response.status_code, e.response
    return None, None


def read_pages(func, per_request, label, **filters):
    """Every envelope of a paged endpoint via as_pages; checks the page sizes."""
    objects = []
    pages = 0
    for env in as_pages(func, per_request=per_request, **filters):
        pages += 1
        got = env.get("objects", [])
        check(len(got) <= per_request, f"{label}: page {pages} has {len(got)} > {per_request} objects")
        if env.get("more", False):
            check(len(got) == per_request, f"{label}: page {pages} has more=true but only {len(got)} objects")
            check(env.get("next"), f"{label}: page {pages} has more=true and no next")
        objects.extend(got)
        check(pages <= 1_000_000, f"{label}: paging does not end")
    return objects, pages


def read_collection(coll, per_request, label):
    """Objects (latest versions) of a collection; checks nothing is repeated."""
    objs, pages = read_pages(coll.get_objects, per_request, label)
    keys = [(o["id"], o.get("modified", o.get("created", ""))) for o in objs]
    dupes = [k for k, n in collections.Counter(keys).items() if n > 1]
    check(not dupes, f"{label}: {len(dupes)} objects repeated across pages, e.g. {dupes[:3]}")
    ids = [o["id"] for o in objs]
    dup_ids = [k for k, n in collections.Counter(ids).items() if n > 1]
    check(not dup_ids, f"{label}: several versions of {dup_ids[:3]} with the default match[version]=last")
    return objs, pages


def compare_ids(label, got, want):
    got, want = set(got), set(want)
    missing = sorted(want - got)
    extra = sorted(got - want)
    check(not missing and not extra,
          f"{label}: {len(missing)} missing (e.g. {missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]})")


def api_root_of(server, label):
    check(server.title, f"{label}: discovery has no title")
    roots = server.api_roots
    check(roots, f"{label}: discovery lists no API root")
    return roots


# ---------------------------------------------------------------------------------------------
# Tanoa


def check_tanoa(url, expect, per_request):
    summary = {"collections": {}, "pages": {}}
    clients = expect["clients"]
    reader = expect["reader"]
    by_alias = {}

    # 401: no credentials, a wrong token; the error is TAXII JSON with a challenge.
    status, resp = http_status(lambda: Server(url).title)
    check(status == 401, f"tanoa: discovery without credentials gave {status}, expected 401")
    check("WWW-Authenticate" in resp.headers, "tanoa: 401 without WWW-Authenticate")
    check(resp.headers.get("Content-Type", "").replace(" ", "") == MEDIA_TAXII,
          f"tanoa: 401 content type {resp.headers.get('Content-Type')}")
    err = resp.json()
    check(err.get("http_status") == "401" and err.get("title"), f"tanoa: 401 body {err}")
    status, _ = http_status(lambda: Server(url, user=reader, password="not-the-token").title)
    check(status == 401, f"tanoa: a wrong token gave {status}, expected 401")
    summary["unauthenticated"] = 401

    # Every client: discovery, API root, exactly its collections listed.
    for name, c in clients.items():
        server = Server(url, user=name, password=c["token"])
        roots = api_root_of(server, f"tanoa/{name}")
        check(len(roots) == 1, f"tanoa/{name}: {len(roots)} API roots, expected 1")
        root = server.default or roots[0]
        check(MEDIA_TAXII in root.versions, f"tanoa/{name}: API root versions {root.versions}")
        check(root.max_content_length > 0, f"tanoa/{name}: max_content_length")
        listed = {}
        for coll in root.collections:
            check(coll.can_read and not coll.can_write,
                  f"tanoa/{name}: collection {coll.alias} can_read={coll.can_read} can_write={coll.can_write}")
            check(coll.media_types == ["application/stix+json;version=2.1"],
                  f"tanoa/{name}: media types {coll.media_types}")
            listed[coll.alias] = coll
        check(sorted(listed) == sorted(c["collections"]),
              f"tanoa/{name}: lists {sorted(listed)}, expected {sorted(c['collections'])}")
        for alias, coll in listed.items():
            by_alias.setdefault(alias, coll.id)
        c["_root"] = root
        c["_listed"] = listed

    # The reader reads every collection in full, paging at per_request.
    forbidden = set(expect.get("forbidden_ids", []))
    for alias, want in expect["collections"].items():
        coll = clients[reader]["_listed"][alias]
        label = f"tanoa/{alias}"
        objs, pages = read_collection(coll, per_request, label)
        compare_ids(label, [o["id"] for o in objs], want)
        leaked = forbidden & {o["id"] for o in objs}
        check(not leaked, f"{label}: TLP:RED objects served: {sorted(leaked)[:3]}")
        summary["collections"][alias] = len(objs)
        summary["pages"][alias] = pages
        if 2 < len(objs) <= 200:
            # Small pages too: the same objects through several next cursors.
            small, small_pages = read_collection(coll, 2, label + " (limit=2)")
            compare_ids(label + " (limit=2)", [o["id"] for o in small], want)
            summary.setdefault("small_pages", {})[alias] = small_pages

    # Every version (match[version]=all), paged.
    for alias, want in expect.get("all_versions", {}).items():
        coll = clients[reader]["_listed"][alias]
        objs, _ = read_pages(coll.get_objects, per_request, f"tanoa/{alias} (all)", version="all")
        got = [(o["id"], o.get("modified", o.get("created"))) for o in objs]
        check(len(got) == len(set(got)), f"tanoa/{alias} (all): repeated object versions")
        compare_ids(f"tanoa/{alias} (all versions)", got, [tuple(x) for x in want])
        leaked = forbidden & {o["id"] for o in objs}
        check(not leaked, f"tanoa/{alias} (all): TLP:RED objects served")
        summary.setdefault("all_versions", {})[alias] = len(got)

    # The versions endpoint.
    for alias, per_id in expect.get("versions", {}).items():
        coll = clients[reader]["_listed"][alias]
        for oid, versions in per_id.items():
            env = coll.object_versions(oid)
            check(env.get("versions") == versions,
                  f"tanoa/{alias}: versions of {oid} are {env.get('versions')}, expected {versions}")
            one = coll.get_object(oid)
            check(len(one.get("objects", [])) == 1, f"tanoa/{alias}: get_object({oid})")
            got_v = one["objects"][0].get("modified", one["objects"][0].get("created"))
            check(got_v == versions[-1], f"tanoa/{alias}: get_object({oid}) is {got_v}, not the last version")
        summary.setdefault("versions_checked", 0)
        summary["versions_checked"] += len(per_id)

    # The manifest: same objects, date_added, and the objects sharing one date_added.
    for alias, n in expect.get("shared_date_added", {}).items():
        coll = clients[reader]["_listed"][alias]
        recs, pages = read_pages(coll.get_manifest, per_request, f"tanoa/{alias} (manifest)")
        compare_ids(f"tanoa/{alias} (manifest)", [r["id"] for r in recs], expect["collections"][alias])
        check(all(r.get("media_type") == "application/stix+json;version=2.1" for r in recs),
              f"tanoa/{alias}: manifest media types")
        shared = collections.Counter(r["date_added"] for r in recs).most_common(1)[0][1]
        check(shared >= n, f"tanoa/{alias}: at most {shared} objects share a date_added, expected >= {n}")
        summary.setdefault("shared_date_added", {})[alias] = shared
        summary.setdefault("manifest_pages", {})[alias] = pages

    # Headers of one page, straight from HTTP.
    alias = next(iter(expect["collections"]))
    cid = by_alias[alias]
    objects_url = clients[reader]["_root"].url + f"collections/{cid}/objects/"
    r = requests.get(objects_url, params={"limit": per_request},
                     headers={"Accept": MEDIA_TAXII}, auth=(reader, clients[reader]["token"]))
    check(r.status_code == 200, f"tanoa: GET {objects_url} gave {r.status_code}")
    check(r.headers.get("Content-Type", "").replace(" ", "") == MEDIA_TAXII, "tanoa: content type")
    if r.json().get("objects"):
        for h in ("X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last"):
            check(h in r.headers, f"tanoa: objects response without {h}")
    r = requests.get(objects_url, headers={"Accept": "application/json"},
                     auth=(reader, clients[reader]["token"]))
    check(r.status_code == 406, f"tanoa: Accept application/json gave {r.status_code}, expected 406")

    # 403: a client reading a collection it may not read (asked directly: it is not listed).
    checked_403 = False
    for name, c in clients.items():
        for alias, cid in by_alias.items():
            if alias in c["collections"]:
                continue
            coll = Collection(c["_root"].url + f"collections/{cid}/", user=name, password=c["token"],
                              collection_info={"id": cid, "title": alias, "can_read": True, "can_write": False})
            status, resp = http_status(lambda: coll.get_objects())
            check(status == 403, f"tanoa/{name}: reading {alias} gave {status}, expected 403")
            check(resp.json().get("http_status") == "403", "tanoa: 403 body")
            status, _ = http_status(lambda: coll.refresh())
            check(status == 403, f"tanoa/{name}: collection {alias} gave {status}, expected 403")
            checked_403 = True
    check(checked_403, "tanoa: no client lacks a collection: 403 not exercised")
    summary["forbidden"] = 403
    return summary


# ---------------------------------------------------------------------------------------------
# medallion


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latest_versions(objects):
    """Ids of the latest version of each object (medallion's default match[version]=last)."""
    best = {}
    for o in objects:
        v = o.get("modified", o.get("created", ""))
        if o["id"] not in best or v > best[o["id"]]:
            best[o["id"]] = v
    return set(best)


def check_medallion(data_dir, per_request, workdir):
    with open(os.path.join(data_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(data_dir, "default_data.json")) as f:
        data_text = f.read()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The test data names http://localhost:5000/; point it at this instance.
    data = json.loads(data_text.replace("http://localhost:5000/", base + "/"))
    data_path = os.path.join(workdir, "medallion-data.json")
    with open(data_path, "w") as f:
        json.dump(data, f)
    config["backend"] = {
        "module": "medallion.backends.memory_backend",
        "module_class": config["backend"]["module_class"],
        "filename": data_path,
    }
    config_path = os.path.join(workdir, "medallion-config.json")
    with open(config_path, "w") as f:
        json.dump(config, f)
    user, password = next(iter(config["users"].items()))
    log = open(os.path.join(workdir, "medallion.log"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "medallion.scripts.run", "--host", "127.0.0.1", "--port", str(port),
         config_path],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            check(proc.poll() is None, f"medallion exited with {proc.returncode}; see {log.name}")
            try:
                requests.get(base + "/taxii2/", timeout=1)
                break
            except requests.exceptions.ConnectionError:
                check(time.time() < deadline, "medallion did not answer within 30 s")
                time.sleep(0.1)
        return exercise_medallion(base + "/taxii2/", user, password, data, per_request)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def exercise_medallion(url, user, password, data, per_request):
    summary = {"collections": {}, "pages": {}}
    status, _ = http_status(lambda: Server(url).title)
    check(status == 401, f"medallion: discovery without credentials gave {status}, expected 401")
    summary["unauthenticated"] = 401
    server = Server(url, user=user, password=password)
    roots = api_root_of(server, "medallion")
    forbidden_checked = False
    for root in roots:
        name = root.url.rstrip("/").rsplit("/", 1)[-1]
        check(MEDIA_TAXII in root.versions, f"medallion/{name}: versions {root.versions}")
        stored = {c["id"]: c for c in data[name]["collections"]}
        for coll in root.collections:
            label = f"medallion/{name}/{coll.title}"
            if not coll.can_read:
                # The same direct request as for Tanoa: 403.
                direct = Collection(coll.url, user=user, password=password,
                                    collection_info={"id": coll.id, "title": coll.title,
                                                     "can_read": True, "can_write": coll.can_write})
                status, _ = http_status(lambda: direct.get_objects())
                check(status == 403, f"{label}: reading a collection with can_read=false gave {status}")
                try:
                    coll.get_objects()
                    check(False, f"{label}: taxii2-client read a collection with can_read=false")
                except AccessError:
                    pass
                forbidden_checked = True
                continue
            objs, pages = read_collection(coll, per_request, label)
            want = latest_versions(stored[coll.id].get("objects", []))
            compare_ids(label, [o["id"] for o in objs], want)
            summary["collections"][coll.id] = len(objs)
            summary["pages"][coll.id] = pages
            if len(objs) > 2:
                # Small pages too: the same objects through several next cursors.
                small, small_pages = read_collection(coll, 2, label + " (limit=2)")
                compare_ids(label + " (limit=2)", [o["id"] for o in small], want)
                check(small_pages > 1, f"{label}: limit=2 did not page")
                summary.setdefault("small_pages", {})[coll.id] = small_pages
            if objs:
                recs, _ = read_pages(coll.get_manifest, per_request, label + " (manifest)")
                check(recs, f"{label}: empty manifest")
                env = coll.object_versions(objs[0]["id"])
                check(env.get("versions"), f"{label}: no versions of {objs[0]['id']}")
    check(forbidden_checked, "medallion: no collection with can_read=false: 403 not exercised")
    summary["forbidden"] = 403
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="discovery URL of the Tanoa endpoint")
    ap.add_argument("--expect", help="expectations (JSON) for the Tanoa endpoint")
    ap.add_argument("--medallion", help="directory with medallion's config.json and default_data.json")
    ap.add_argument("--per-request", type=int, default=50)
    args = ap.parse_args()
    out = {"per_request": args.per_request}
    try:
        if args.url:
            check(args.expect, "--url needs --expect")
            with open(args.expect) as f:
                expect = json.load(f)
            t = time.monotonic()
            out["tanoa"] = check_tanoa(args.url, expect, args.per_request)
            out["tanoa"]["seconds"] = round(time.monotonic() - t, 3)
        if args.medallion:
            with tempfile.TemporaryDirectory(prefix="tanoa-medallion-") as work:
                t = time.monotonic()
                out["medallion"] = check_medallion(args.medallion, args.per_request, work)
                out["medallion"]["seconds"] = round(time.monotonic() - t, 3)
    except CheckFailed as e:
        print(f"check_taxii: FAILED: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
