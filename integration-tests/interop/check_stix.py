"""Checks a STIX 2.1 bundle exported by `tanoa export --format stix` with the ecosystem's own
tools, against the original file(s) that were imported.

Checks:
- stix2-validator (OASIS, --version 2.1) reports no error (warnings are counted, not fatal);
- every object of each original file is in the export with the same id and `modified` (or
  `created` for objects without `modified`) and is equal as a JSON value, custom properties
  (x_mitre_* …) included;
- every Tanoa report carries the signature extension, its extension-definition is present, the
  item id is SHA-256(payload), the payload (protobuf tanoa.v1.Advisory) names the report's
  title, and, with --public-key, the ed25519 signature over the DSSE PAE verifies (RFC 8032,
  implemented below: the venv has no crypto library);
- with --mitre-group G0065=70 / --mitre-campaign C0049=26: mitreattack-python, loading the
  exported file, counts that many techniques for the group (incl. campaigns) and campaign.

Prints a JSON summary on success; exits 1 with a message on the first failed check.
"""

import argparse
import base64
import hashlib
import json
import sys

SIGNATURE_EXTENSION = "extension-definition--d3a6c1f0-5b7e-4c2a-9f1e-7a4b2c8e6d10"
PAYLOAD_TYPE = "application/vnd.tanoa.advisory.v1+protobuf"


def fail(msg):
    print(f"check_stix: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


# --- Ed25519 verification (RFC 8032, section 6, reference code) -----------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _point_add(a, b):
    A = (a[1] - a[0]) * (b[1] - b[0]) % P
    B = (a[1] + a[0]) * (b[1] + b[0]) % P
    C = 2 * a[3] * b[3] * D % P
    Dd = 2 * a[2] * b[2] % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def _point_mul(s, p):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _point_add(q, p)
        p = _point_add(p, p)
        s >>= 1
    return q


def _point_equal(a, b):
    if (a[0] * b[2] - b[0] * a[2]) % P != 0:
        return False
    return (a[1] * b[2] - b[1] * a[2]) % P == 0


def _recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


G_Y = 4 * pow(5, P - 2, P) % P
G_X = _recover_x(G_Y, 0)
G = (G_X, G_Y, 1, G_X * G_Y % P)


def _decompress(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def ed25519_verify(public, msg, signature):
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decompress(public)
    r = _decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + msg).digest(), "little") % L
    sB = _point_mul(s, G)
    hA = _point_mul(h, a)
    return _point_equal(sB, _point_add(r, hA))


def pae(payload):
    t = PAYLOAD_TYPE.encode()
    return b"DSSEv1 %d %s %d " % (len(t), t, len(payload)) + payload


# --- Minimal protobuf reader: the string fields of tanoa.v1.Advisory we compare -------------


def _varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def advisory_fields(payload):
    """Top-level fields of a tanoa.v1.Advisory: {1: id, 2: origin, 9: title, 16: withdrawn}."""
    out, i = {}, 0
    while i < len(payload):
        key, i = _varint(payload, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(payload, i)
        elif wire == 2:
            n, i = _varint(payload, i)
            v = payload[i : i + n]
            i += n
        elif wire == 1:
            v, i = payload[i : i + 8], i + 8
        elif wire == 5:
            v, i = payload[i : i + 4], i + 4
        else:
            fail(f"payload: unexpected protobuf wire type {wire}")
        out.setdefault(field, v)
    return out


# --- Checks -----------------------------------------------------------------------------------


def validate(path):
    from stix2validator import ValidationOptions, validate_file

    res = validate_file(path, ValidationOptions(version="2.1"))
    if res.fatal:
        fail(f"stix2-validator: fatal: {res.fatal.as_dict()}")
    errors, warnings = [], 0
    for o in res.object_results:
        for e in o.errors or []:
            errors.append(f"{o.object_id}: {e}")
        warnings += len(o.warnings or [])
    if errors or not res.is_valid:
        fail("stix2-validator --version 2.1 reports errors:\n" + "\n".join(errors[:50]))
    return warnings


def version_key(o):
    return (o.get("id"), o.get("modified") or o.get("created") or "")


def original_objects(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if doc.get("type") == "bundle":
        return doc["objects"]
    return [doc]


def check_originals(exported, originals):
    by_key = {}
    for o in exported:
        by_key.setdefault(version_key(o), o)
    matched = x_mitre = 0
    for path in originals:
        for o in original_objects(path):
            got = by_key.get(version_key(o))
            if got is None:
                fail(f"{path}: {o.get('id')} (modified {version_key(o)[1]}) is missing from the export")
            if got != o:
                diff = sorted(k for k in set(o) | set(got) if o.get(k) != got.get(k))
                fail(f"{path}: {o.get('id')} changed in the export (properties {diff})")
            x_mitre += sum(1 for k in o if k.startswith("x_mitre_"))
            matched += 1
    return matched, x_mitre


def check_reports(exported, public_key):
    ids = {o.get("id") for o in exported}
    reports = [
        o
        for o in exported
        if o.get("type") == "report" and SIGNATURE_EXTENSION in (o.get("extensions") or {})
    ]
    if not reports:
        fail("no Tanoa report with the signature extension in the export")
    if SIGNATURE_EXTENSION not in ids:
        fail(f"the extension-definition {SIGNATURE_EXTENSION} is not in the export")
    verified = 0
    for r in reports:
        ext = r["extensions"][SIGNATURE_EXTENSION]
        payload = base64.b64decode(ext["payload"])
        signature = base64.b64decode(ext["signature"])
        if ext.get("payload_type") != PAYLOAD_TYPE:
            fail(f"{r['id']}: payload_type {ext.get('payload_type')!r}")
        if hashlib.sha256(payload).hexdigest() != ext["tanoa_item_id"]:
            fail(f"{r['id']}: tanoa_item_id is not SHA-256 of the payload")
        fields = advisory_fields(payload)
        if fields.get(9, b"").decode() != r["name"]:
            fail(f"{r['id']}: the signed title {fields.get(9)!r} is not the report name {r['name']!r}")
        if fields.get(2, b"").decode() != ext["signer"]:
            fail(f"{r['id']}: the signed origin {fields.get(2)!r} is not the signer {ext['signer']!r}")
        for ref in r.get("object_refs", []):
            if ref not in ids:
                fail(f"{r['id']}: object_refs names {ref}, which is not in the export")
        if public_key is not None:
            if not ed25519_verify(public_key, pae(payload), signature):
                fail(f"{r['id']}: the ed25519 signature does not verify with the public key given")
            verified += 1
    return len(reports), verified


def mitre_counts(path, group, campaign):
    from mitreattack.stix20 import MitreAttackData

    data = MitreAttackData(path)
    out = {}
    if group:
        gid, want = group.split("=")
        g = data.get_object_by_attack_id(gid, "intrusion-set")
        if g is None:
            fail(f"mitreattack-python finds no group {gid} in the export")
        n = len(data.get_techniques_used_by_group(g.id))
        if n != int(want):
            fail(f"mitreattack-python counts {n} techniques for {gid}, expected {want}")
        out["group_techniques"] = n
    if campaign:
        cid, want = campaign.split("=")
        c = data.get_object_by_attack_id(cid, "campaign")
        if c is None:
            fail(f"mitreattack-python finds no campaign {cid} in the export")
        n = len(data.get_techniques_used_by_campaign(c.id))
        if n != int(want):
            fail(f"mitreattack-python counts {n} techniques for {cid}, expected {want}")
        out["campaign_techniques"] = n
    out["groups"] = len(data.get_groups())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", required=True, help="the exported bundle (*.json)")
    ap.add_argument("--original", action="append", default=[], help="an imported file (repeatable)")
    ap.add_argument("--public-key", help="hex ed25519 public key of the origin")
    ap.add_argument("--mitre-group", help="ATTACK_ID=TECHNIQUES, e.g. G0065=70")
    ap.add_argument("--mitre-campaign", help="ATTACK_ID=TECHNIQUES, e.g. C0049=26")
    a = ap.parse_args()

    warnings = validate(a.export)
    with open(a.export, encoding="utf-8") as f:
        bundle = json.load(f)
    if bundle.get("type") != "bundle":
        fail("the export is not a bundle")
    exported = bundle["objects"]
    matched, x_mitre = check_originals(exported, a.original)
    key = bytes.fromhex(a.public_key) if a.public_key else None
    reports, verified = check_reports(exported, key)
    summary = {
        "valid": True,
        "warnings": warnings,
        "objects": len(exported),
        "original_objects_matched": matched,
        "x_mitre_properties": x_mitre,
        "reports": reports,
        "signatures_verified": verified,
    }
    if a.mitre_group or a.mitre_campaign:
        summary.update(mitre_counts(a.export, a.mitre_group, a.mitre_campaign))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
