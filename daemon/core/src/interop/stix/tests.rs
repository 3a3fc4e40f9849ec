//! Tests of the STIX import and export over the vendored third-party material in `testdata/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

use super::markings::{self, SIGNATURE_EXTENSION_ID};
use super::*;
use crate::envelope::{self, Envelope, Keyring, PublicKeyRecord, SigningIdentity, Verified};
use crate::model::draft::draft_to_advisory;
use crate::model::{
    Advisory, Draft, Indicator, IndicatorKind, Limits, Severity, Tlp, normalize_advisory,
};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join("testdata")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(testdata().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn json_files(dir: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(testdata().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    out.sort();
    out
}

/// Every file of the vendored STIX material, with whether it is valid STIX.
fn all_files() -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for dir in [
        "stix21-oasis/examples",
        "stix21-oasis/examples/threat-reports",
        "stix20-oasis-examples",
        "stix20-oasis-examples/threat-reports",
        "stix21-validator-test-examples",
        "tlp2",
        "mitre-attack-apt40",
    ] {
        for f in json_files(dir) {
            let invalid = f.contains("/invalid_")
                || f.ends_with("using-tlp2.0-green.json")
                || f.contains("tlp2-extension-schema");
            out.push((f, !invalid));
        }
    }
    out
}

fn opts(tlp: Tlp) -> ImportOptions {
    ImportOptions {
        tlp: Some(tlp),
        ..ImportOptions::default()
    }
}

/// Imports a file with `--tlp clear`, adding an audience when its markings need one.
fn import_file(rel: &str) -> Imported {
    let bytes = read(rel);
    match import_bundle_report(&bytes, &opts(Tlp::Clear)) {
        Err(StixError::Options(m)) if m.contains("--audience") => {
            let o = ImportOptions {
                audience: vec!["fj-cert".into()],
                ..opts(Tlp::Clear)
            };
            import_bundle_report(&bytes, &o).unwrap_or_else(|e| panic!("{rel}: {e}"))
        }
        r => r.unwrap_or_else(|e| panic!("{rel}: {e}")),
    }
}

fn identity() -> SigningIdentity {
    SigningIdentity::new("ws-cert", SigningKey::from_bytes(&[7u8; 32]))
}

fn keyring(id: &SigningIdentity) -> Keyring {
    let mut k = Keyring::new();
    k.insert(PublicKeyRecord::new(
        id.member(),
        id.verifying_key(),
        None,
        None,
    ));
    k
}

const T0: i64 = 1_780_000_000_000;

/// Builds and signs the advisory the daemon would make of a draft.
fn sign_draft(id: &SigningIdentity, d: &Draft, revision: u64) -> Verified<Advisory> {
    let mut a = draft_to_advisory(d, id.member(), draft_id(d), revision, T0, T0 + 1000).unwrap();
    normalize_advisory(&mut a);
    id.sign(a, &Limits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", draft_id(d)))
}

/// The draft's advisory id ("" when it has none).
fn draft_id(d: &Draft) -> &str {
    d.id.as_deref().unwrap_or_default()
}

fn export(v: &Verified<Advisory>) -> Vec<Value> {
    advisory_objects(v.value(), v.envelope())
}

/// The objects of a document after the 2.0 → 2.1 upgrade (what import keeps).
fn upgraded_objects(rel: &str) -> Vec<Value> {
    let mut doc: Value = serde_json::from_slice(&read(rel)).unwrap();
    upgrade_to_21(&mut doc);
    match doc.get("type").and_then(Value::as_str) {
        Some("bundle") => doc["objects"].as_array().unwrap().clone(),
        _ => vec![doc],
    }
}

#[test]
fn every_valid_file_imports() {
    let mut n = 0;
    for (f, valid) in all_files() {
        if !valid {
            continue;
        }
        let imp = import_file(&f);
        assert_eq!(imp.drafts.len(), 1, "{f}");
        let d = &imp.drafts[0];
        assert!(
            draft_id(d).starts_with("stix-") && draft_id(d).len() == 17,
            "{f}: {}",
            draft_id(d)
        );
        let extras: Value = serde_json::from_slice(&d.extras).unwrap();
        let kept = extras["stix"].as_array().unwrap();
        assert_eq!(kept.len(), imp.summary.objects, "{f}");
        assert_eq!(kept, &upgraded_objects(&f), "{f}: objects kept verbatim");
        // The draft is accepted by the daemon's own rules.
        let id = identity();
        let v = sign_draft(&id, d, 1);
        assert_eq!(v.value().extras, d.extras);
        n += 1;
    }
    assert_eq!(n, 26, "valid files");
}

#[test]
fn every_invalid_file_is_refused_with_the_object_and_the_reason() {
    let cases = [
        (
            "stix21-validator-test-examples/invalid_braces.json",
            "not valid JSON",
            "line 1 column 1",
        ),
        (
            "stix21-validator-test-examples/invalid_comma.json",
            "not valid JSON",
            "trailing comma at line 9",
        ),
        (
            "stix21-validator-test-examples/invalid_identity.json",
            "identity--8c6af861-7b20-41ef-9b59-6344fd872a8f",
            "modified: missing (required on a identity)",
        ),
        (
            "stix21-validator-test-examples/invalid_timestamp.json",
            "identity--8c6af861-7b20-41ef-9b59-6344fd872a8f",
            "modified: \"2015-08-08T15:50:10.983Z\" must be later than or equal to created (\"2016-08-08T15:50:10.983Z\")",
        ),
        (
            "tlp2/using-tlp2.0-green.json",
            "bundle--161f8ade-b67d-11e3-b8af-f01faf20d111: type: missing",
            "relationship--1621d4d4-b67d-11e3-9670-f01faf20d111: created: \"2022-101-27T13:49:54.326Z\" is not an RFC 3339 timestamp",
        ),
        (
            "tlp2/tlp2-extension-schema.extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d.json",
            "not a STIX bundle or object",
            "\"type\" and \"id\"",
        ),
    ];
    for (f, a, b) in cases {
        let err = import_bundle(&read(f), &opts(Tlp::Clear)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(a), "{f}: {msg}");
        assert!(msg.contains(b), "{f}: {msg}");
    }
    // Every file classified invalid is among the cases.
    for (f, valid) in all_files() {
        if !valid {
            assert!(cases.iter().any(|c| c.0 == f), "{f} has no expected reason");
        }
    }
}

#[test]
fn broken_objects_are_named_with_the_reason() {
    let good = json!({
        "type": "indicator", "spec_version": "2.1",
        "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "pattern": "[ipv4-addr:value = '198.51.100.1']", "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z"
    });
    let bundle_of = |o: Value| {
        serde_json::to_vec(&json!({
            "type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
            "objects": [o]
        }))
        .unwrap()
    };
    let id = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f";
    let with = |k: &str, v: Value| {
        let mut o = good.clone();
        o[k] = v;
        o
    };
    let without = |k: &str| {
        let mut o = good.clone();
        o.as_object_mut().unwrap().shift_remove(k);
        o
    };
    let cases: Vec<(Value, &str, String)> = vec![
        (
            with("created", json!("2022-101-27T13:49:54.326Z")),
            id,
            "created: \"2022-101-27T13:49:54.326Z\" is not an RFC 3339 timestamp".into(),
        ),
        (
            with("modified", json!("2026-01-01T00:00:00Z")),
            id,
            "modified: \"2026-01-01T00:00:00Z\" must be precise to the millisecond".into(),
        ),
        (without("created"), id, "created: missing".into()),
        (without("valid_from"), id, "valid_from: missing".into()),
        (
            without("type"),
            id,
            "type: missing".into(),
        ),
        (
            without("id"),
            "objects[0]",
            "id: missing".into(),
        ),
        (
            with("id", json!("indicator-8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f")),
            "indicator-8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "is not an identifier of the form type--uuid".into(),
        ),
        (
            with("id", json!("malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f")),
            "malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "does not start with its type \"indicator--\"".into(),
        ),
        (
            with("spec_version", json!("2.2")),
            id,
            "spec_version: \"2.2\" is not \"2.1\"".into(),
        ),
        (
            with("pattern", json!("[ipv4-addr:value = '198.51.100.1'")),
            id,
            "pattern: \"[ipv4-addr:value = '198.51.100.1'\": pattern does not parse at offset 33: expected ']' closing the observation".into(),
        ),
        (
            with("valid_until", json!("2025-01-01T00:00:00Z")),
            id,
            "valid_until: \"2025-01-01T00:00:00Z\" must be later than valid_from".into(),
        ),
        (
            with("created_by_ref", json!("identity-x")),
            id,
            "created_by_ref: \"identity-x\" is not an identifier".into(),
        ),
        (
            with("confidence", json!(101)),
            id,
            "confidence: 101 is not an integer 0..=100".into(),
        ),
    ];
    for (o, who, why) in cases {
        let err = import_bundle(&bundle_of(o), &opts(Tlp::Clear)).unwrap_err();
        assert!(matches!(err, StixError::Invalid { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("{who}: ")), "{who}: {msg}");
        assert!(msg.contains(&why), "{why}: {msg}");
    }
    // The good one imports; a pattern nobody maps is kept but not indexed.
    let imp = import_bundle_report(&bundle_of(good.clone()), &opts(Tlp::Clear)).unwrap();
    assert_eq!(imp.drafts[0].indicators.len(), 1);
    let odd = with(
        "pattern",
        json!(
            "[x509-certificate:issuer = 'CN=WEBMAIL' AND x509-certificate:serial_number = '4c:0b']"
        ),
    );
    let imp = import_bundle_report(&bundle_of(odd), &opts(Tlp::Clear)).unwrap();
    assert!(imp.drafts[0].indicators.is_empty());
    assert_eq!(imp.summary.not_indexed, 1);
    assert_eq!(imp.summary.not_indexed_examples[0].id, id);
    assert!(
        imp.drafts[0].summary.contains("1 not indexed"),
        "{}",
        imp.drafts[0].summary
    );
    // Not JSON at all, and not STIX.
    assert!(matches!(
        import_bundle(b"[1, 2]", &opts(Tlp::Clear)),
        Err(StixError::NotStix { .. })
    ));
    let err = import_bundle(
        br#"{"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": []}"#,
        &opts(Tlp::Clear),
    )
    .unwrap_err();
    assert!(err.to_string().contains("holds no object"), "{err}");
}

#[test]
fn tlp_comes_from_the_most_restrictive_marking_and_never_goes_down() {
    let obj = |id: &str, markings: Value| {
        json!({
            "type": "identity", "spec_version": "2.1", "id": id,
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "name": "x", "object_marking_refs": markings
        })
    };
    let bundle = |objs: Vec<Value>| {
        serde_json::to_vec(&json!({
            "type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
            "objects": objs
        }))
        .unwrap()
    };
    let green2 = markings::tlp2_id(Tlp::Green);
    let amber1 = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";
    let b = bundle(vec![
        obj(
            "identity--8c6af861-7b20-41ef-9b59-6344fd872a8f",
            json!([green2]),
        ),
        obj(
            "identity--9c6af861-7b20-41ef-9b59-6344fd872a8f",
            json!([amber1]),
        ),
    ]);
    // AMBER (TLP 1.0) is the most restrictive; --tlp clear does not lower it.
    let err = import_bundle(&b, &opts(Tlp::Clear)).unwrap_err();
    assert!(err.to_string().contains("TLP:AMBER"), "{err}");
    assert!(err.to_string().contains("--audience"), "{err}");
    let o = ImportOptions {
        audience: vec!["fj-cert".into()],
        ..opts(Tlp::Clear)
    };
    let imp = import_bundle_report(&b, &o).unwrap();
    assert_eq!(imp.summary.tlp, Tlp::Amber);
    assert_eq!(
        imp.summary.tlp_source,
        TlpSource::Marking {
            id: amber1.into(),
            version: markings::TlpVersion::V1
        }
    );
    assert_eq!(imp.drafts[0].tlp, Tlp::Amber);
    // A more restrictive --tlp raises it.
    let o = ImportOptions {
        audience: vec!["fj-cert".into()],
        ..opts(Tlp::Red)
    };
    let imp = import_bundle_report(&b, &o).unwrap();
    assert_eq!(imp.summary.tlp, Tlp::Red);
    assert_eq!(imp.summary.tlp_source, TlpSource::Option);
    // No marking: --tlp is required.
    let plain = bundle(vec![obj(
        "identity--8c6af861-7b20-41ef-9b59-6344fd872a8f",
        json!([]),
    )]);
    let err = import_bundle(&plain, &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, StixError::NoTlp { .. }), "{err}");
    assert!(err.to_string().contains("pass --tlp"), "{err}");
    let imp = import_bundle_report(&plain, &opts(Tlp::Green)).unwrap();
    assert_eq!(imp.summary.tlp, Tlp::Green);
    // Granular markings count too (TLP 2.0 RED).
    let mut g = obj(
        "identity--8c6af861-7b20-41ef-9b59-6344fd872a8f",
        json!([green2]),
    );
    g["granular_markings"] =
        json!([{"marking_ref": markings::tlp2_id(Tlp::Red), "selectors": ["name"]}]);
    let err = import_bundle(&bundle(vec![g]), &opts(Tlp::Clear)).unwrap_err();
    assert!(err.to_string().contains("TLP:RED"), "{err}");
    // The vendored files: TLP 1.0 RED on the interop example, TLP 1.0 GREEN on a 2.0 example.
    let imp = import_file("stix21-oasis/examples/interop-objectmarking-test.json");
    assert_eq!(imp.summary.tlp, Tlp::Red);
    let imp = import_file("stix20-oasis-examples/malicious-email-indicator-with-attachment.json");
    assert_eq!(imp.summary.tlp, Tlp::Green);
}

#[test]
fn poison_ivy_maps_indicators_actors_and_title() {
    let imp = import_file("stix21-oasis/examples/threat-reports/poisonivy.json");
    let d = &imp.drafts[0];
    let s = &imp.summary;
    assert_eq!(
        d.title,
        "Poison Ivy: Assessing Damage and Extracting Intelligence"
    );
    assert_eq!(s.tlp_source, TlpSource::Option);
    assert!(s.stix_indicators > 0);
    assert_eq!(
        s.stix_indicators,
        s.indexed + s.partly_indexed + s.not_indexed
    );
    assert_eq!(s.values, d.indicators.len());
    // Every value is normalized and unique.
    let mut seen = std::collections::HashSet::new();
    for i in &d.indicators {
        let kind = i.kind;
        assert_eq!(
            crate::model::normalize_indicator(kind, &i.value).as_deref(),
            Ok(i.value.as_str())
        );
        assert!(seen.insert((i.kind, i.value.clone())), "{}", i.value);
        assert!(i.note.starts_with("STIX indicator--"), "{}", i.note);
    }
    // The report lists its indicators; each indexed value comes from a pattern.
    let kinds: std::collections::HashSet<IndicatorKind> =
        d.indicators.iter().map(|i| i.kind).collect();
    assert!(kinds.contains(&(IndicatorKind::Domain)));
    assert!(kinds.contains(&(IndicatorKind::Ipv4)));
    assert!(
        d.indicators
            .iter()
            .any(|i| i.value == "113.10.246.30" && i.kind == IndicatorKind::Ipv4)
    );
    assert!(
        d.cves.iter().all(|c| c.starts_with("CVE-")) && d.cves.len() >= 5,
        "{:?}",
        d.cves
    );
}

#[test]
fn apt1_keeps_cidr_ranges_and_skips_what_it_cannot_index() {
    let imp = import_file("stix21-oasis/examples/threat-reports/apt1.json");
    let d = &imp.drafts[0];
    let cidr: Vec<&str> = d
        .indicators
        .iter()
        .filter(|i| i.kind == IndicatorKind::Cidr)
        .map(|i| i.value.as_str())
        .collect();
    assert!(cidr.contains(&"58.246.0.0/15"), "{cidr:?}");
    assert!(d.actors.iter().any(|a| a == "APT1"), "{:?}", d.actors);
    // x509 patterns are kept but not indexed.
    assert!(imp.summary.not_indexed > 0);
}

#[test]
fn apt40_is_one_advisory_with_its_actors() {
    let imp = import_file("mitre-attack-apt40/apt40-G0065-C0049.stix21-DERIVED.bundle.json");
    assert_eq!(imp.summary.objects, 185);
    assert_eq!(imp.summary.upgraded, 0);
    let d = &imp.drafts[0];
    assert_eq!(d.title, "Leviathan");
    assert_eq!(draft_id(d), "stix-14671499c45a");
    for a in ["APT40", "Leviathan", "TEMP.Periscope"] {
        assert!(d.actors.iter().any(|x| x == a), "{a}: {:?}", d.actors);
    }
    assert!(d.indicators.is_empty());
    // The 2.0 set gives exactly the same advisory.
    let imp20 = import_file("mitre-attack-apt40/apt40-G0065-C0049.stix20.bundle.json");
    assert_eq!(imp20.summary.upgraded, 185);
    assert_eq!(imp20.drafts[0].extras, d.extras);
    assert_eq!(imp20.drafts[0].actors, d.actors);
}

#[test]
fn stix20_upgrade_agrees_with_mitres_derived_21_file() {
    let rel20 = "mitre-attack-apt40/apt40-G0065-C0049.stix20.bundle.json";
    let rel21 = "mitre-attack-apt40/apt40-G0065-C0049.stix21-DERIVED.bundle.json";
    let mut doc: Value = serde_json::from_slice(&read(rel20)).unwrap();
    assert_eq!(upgrade_to_21(&mut doc), 185);
    let want: Value = serde_json::from_slice(&read(rel21)).unwrap();
    assert_eq!(doc, want);
    // Byte for byte, in the same layout (4-space indent), key order included.
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(&doc, &mut ser).unwrap();
    let text = read(rel21);
    let text = text.strip_suffix(b"\n").unwrap_or(&text);
    assert!(
        out == text,
        "the upgrade differs from the DERIVED file in layout or key order"
    );
    // The OASIS 2.0 examples upgrade to objects every 2.1 check accepts.
    for f in json_files("stix20-oasis-examples")
        .into_iter()
        .chain(json_files("stix20-oasis-examples/threat-reports"))
    {
        let objs = upgraded_objects(&f);
        for o in &objs {
            assert_eq!(o["spec_version"], "2.1", "{f}");
            if o["type"] == "indicator" {
                assert_eq!(o["pattern_type"], "stix", "{f}");
                assert!(o.get("labels").is_none(), "{f}");
                assert!(o.get("indicator_types").is_some(), "{f}");
            }
            if o["type"] == "malware" {
                assert!(o.get("is_family").is_some(), "{f}");
            }
        }
    }
}

/// Checks that every original object is in the export, equal as a JSON value.
fn assert_round_trip(f: &str, exported: &[Value]) {
    let by_id: HashMap<(&str, &str), &Value> = exported
        .iter()
        .map(|o| {
            (
                (
                    o["id"].as_str().unwrap(),
                    o.get("modified")
                        .or_else(|| o.get("created"))
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                ),
                o,
            )
        })
        .collect();
    for o in upgraded_objects(f) {
        let key = (
            o["id"].as_str().unwrap(),
            o.get("modified")
                .or_else(|| o.get("created"))
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
        let got = by_id
            .get(&key)
            .unwrap_or_else(|| panic!("{f}: {key:?} missing from the export"));
        assert_eq!(*got, &o, "{f}: {key:?} changed");
        assert_eq!(
            serde_json::to_string(*got).unwrap(),
            serde_json::to_string(&o).unwrap(),
            "{f}: {key:?} key order or number text changed"
        );
    }
}

#[test]
fn round_trip_keeps_every_original_object() {
    let id = identity();
    for (f, valid) in all_files() {
        if !valid {
            continue;
        }
        let imp = import_file(&f);
        let v = sign_draft(&id, &imp.drafts[0], 1);
        let objs = export(&v);
        assert_round_trip(&f, &objs);
        // One report of ours, referring to every other object.
        let reports: Vec<&Value> = objs
            .iter()
            .filter(|o| {
                o["type"] == "report"
                    && o.get("extensions")
                        .is_some_and(|e| e.get(SIGNATURE_EXTENSION_ID).is_some())
            })
            .collect();
        assert_eq!(reports.len(), 1, "{f}");
        let refs = reports[0]["object_refs"].as_array().unwrap();
        assert_eq!(
            refs.len() + 1,
            {
                let mut ids: Vec<&str> = objs.iter().map(|o| o["id"].as_str().unwrap()).collect();
                ids.sort_unstable();
                ids.dedup();
                ids.len()
            },
            "{f}"
        );
        // No indicator is generated for what a kept indicator already says.
        let ours = objs
            .iter()
            .filter(|o| {
                o["type"] == "indicator" && o["created_by_ref"] == reports[0]["created_by_ref"]
            })
            .count();
        assert_eq!(ours, 0, "{f}: generated indicators duplicate kept ones");
    }
}

fn native_draft() -> Draft {
    let ind = |kind: IndicatorKind, value: &str, confidence: u8, until: i64| Indicator {
        kind,
        value: value.into(),
        confidence,
        valid_until_ms: (until != 0).then_some(until),
        note: "seen in the wild".into(),
    };
    Draft {
        id: Some("ws-2026-0042".into()),
        tlp: Tlp::Green,
        audience: Vec::new(),
        title: "APT40 phishing wave".into(),
        summary: "Line one.\nLine two.".into(),
        severity: Severity::High,
        actors: vec!["APT40".into()],
        cves: vec!["CVE-2017-11882".into()],
        indicators: vec![
            ind(IndicatorKind::Ipv4, "192.0.2.7", 80, 0),
            ind(IndicatorKind::Cidr, "198.51.100.0/24", 0, T0 + 86_400_000),
            ind(IndicatorKind::Ipv6, "2001:db8::1", 0, 0),
            ind(IndicatorKind::Domain, "update.pacific-news.example", 0, 0),
            ind(IndicatorKind::Url, "https://evil.example/it's", 0, 0),
            ind(IndicatorKind::Email, "hr@evil.example", 0, 0),
            ind(IndicatorKind::Sha256, &"ab".repeat(32), 0, 0),
            ind(IndicatorKind::Md5, &"cd".repeat(16), 0, 0),
            ind(IndicatorKind::Filename, "it's.doc", 0, 0),
            ind(IndicatorKind::Email, "a\\b@evil.example", 0, 0),
            ind(IndicatorKind::Asn, "AS64500", 0, 0),
            ind(IndicatorKind::Cve, "CVE-2017-0199", 0, 0),
            ind(IndicatorKind::Ipv4, "192.0.2.8", 0, T0 - 5000),
        ],
        references: vec!["https://attack.mitre.org/groups/G0065/".into()],
        valid_until_ms: None,
        extras: Vec::new(),
    }
}

#[test]
fn native_advisory_exports_identity_report_indicators_and_tlp() {
    let id = identity();
    let v = sign_draft(&id, &native_draft(), 3);
    let objs = export(&v);
    fn of_type<'a>(objs: &'a [Value], ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        objs.iter().filter(move |o| o["type"] == ty)
    }
    let of = |ty: &'static str| of_type(&objs, ty);
    let identity_obj = of("identity").find(|o| o["name"] == "ws-cert").unwrap();
    assert_eq!(identity_obj["identity_class"], "organization");
    let report = of("report").next().unwrap();
    assert_eq!(report["name"], "APT40 phishing wave");
    assert_eq!(report["description"], "Line one.\nLine two.");
    assert_eq!(report["published"], format_timestamp(T0));
    assert_eq!(report["created"], format_timestamp(T0));
    assert_eq!(report["modified"], format_timestamp(T0 + 1000));
    assert_eq!(report["created_by_ref"], identity_obj["id"]);
    assert_eq!(
        report["object_marking_refs"],
        json!([markings::tlp2_id(Tlp::Green)])
    );
    let refs = report["external_references"].as_array().unwrap();
    assert!(
        refs.iter()
            .any(|r| r["url"] == "https://attack.mitre.org/groups/G0065/")
    );
    assert!(refs.iter().any(|r| r["external_id"] == "CVE-2017-11882"));
    // The TLP 2.0 GREEN marking definition, as the extension schema defines it.
    let marking = of("marking-definition").next().unwrap();
    assert_eq!(marking["id"], markings::tlp2_id(Tlp::Green));
    assert_eq!(
        marking["extensions"][markings::TLP2_EXTENSION_ID]["tlp_2_0"],
        "green"
    );
    // The published CLEAR/AMBER files equal what we build.
    for (file, tlp) in [
        ("tlp2/tlp-clear.json", Tlp::Clear),
        ("tlp2/tlp-amber.json", Tlp::Amber),
        ("tlp2/tlp-amber+strict.json", Tlp::AmberStrict),
    ] {
        let doc: Value = serde_json::from_slice(&read(file)).unwrap();
        assert_eq!(
            doc["objects"][0],
            markings::tlp2_marking_definition(tlp),
            "{file}"
        );
    }
    // Indicators: one per non-CVE indicator, patterns escaped.
    let patterns: Vec<&str> = of("indicator")
        .map(|o| o["pattern"].as_str().unwrap())
        .collect();
    assert_eq!(patterns.len(), 12, "{patterns:?}");
    assert!(patterns.contains(&"[ipv4-addr:value = '192.0.2.7']"));
    assert!(patterns.contains(&"[ipv4-addr:value = '198.51.100.0/24']"));
    assert!(patterns.contains(&"[url:value = 'https://evil.example/it\\'s']"));
    assert!(patterns.contains(&"[file:name = 'it\\'s.doc']"));
    assert!(patterns.contains(&"[email-addr:value = 'a\\\\b@evil.example']"));
    assert!(patterns.contains(&"[autonomous-system:number = 64500]"));
    assert!(patterns.contains(&"[file:hashes.MD5 = 'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd']"));
    for o in of("indicator") {
        assert_eq!(o["pattern_type"], "stix");
        assert_eq!(o["object_marking_refs"], report["object_marking_refs"]);
        // Our own mapping reads back the value.
        let m = pattern::map_pattern(o["pattern"].as_str().unwrap()).unwrap();
        assert_eq!(m.values.len(), 1, "{}", o["pattern"]);
        let from = check::parse_timestamp_ms(o["valid_from"].as_str().unwrap()).unwrap();
        if let Some(u) = o.get("valid_until") {
            assert!(check::parse_timestamp_ms(u.as_str().unwrap()).unwrap() > from);
        }
    }
    let c2 = of("indicator")
        .find(|o| o["pattern"] == "[ipv4-addr:value = '192.0.2.7']")
        .unwrap();
    assert_eq!(c2["confidence"], 80);
    assert_eq!(c2["valid_from"], format_timestamp(T0));
    let cidr = of("indicator")
        .find(|o| o["pattern"] == "[ipv4-addr:value = '198.51.100.0/24']")
        .unwrap();
    assert_eq!(cidr["valid_until"], format_timestamp(T0 + 86_400_000));
    // CVEs become vulnerabilities, actors threat actors.
    let vulns: Vec<&Value> = of("vulnerability").collect();
    assert_eq!(vulns.len(), 2);
    assert_eq!(of("threat-actor").next().unwrap()["name"], "APT40");
    // Every object passes our own checks, and ids are deterministic.
    let mut p = Problems::default();
    for (n, o) in objs.iter().enumerate() {
        check::check_object(o, &format!("objects[{n}]"), &mut p);
    }
    assert!(p.is_empty(), "{:?}", p.into_result());
    assert_eq!(export(&sign_draft(&id, &native_draft(), 3)), objs);
    // The bundle of two exports of the same revision holds each object once.
    let mut twice = objs.clone();
    twice.extend(objs.clone());
    let b = bundle(twice);
    assert_eq!(b["objects"].as_array().unwrap().len(), objs.len());
    assert_eq!(b, bundle(objs.clone()));
    assert!(b["id"].as_str().unwrap().starts_with("bundle--"));
}

#[test]
fn withdrawn_advisory_exports_revoked_objects() {
    let id = identity();
    let mut a = sign_draft(&id, &native_draft(), 1).value().clone();
    a.revision = 2;
    a.withdrawn = true;
    a.withdrawn_reason = "false positive".into();
    let v = id.sign(a, &Limits::default()).unwrap();
    let objs = export(&v);
    let report = objs.iter().find(|o| o["type"] == "report").unwrap();
    assert_eq!(report["revoked"], true);
    assert!(
        report["description"]
            .as_str()
            .unwrap()
            .starts_with("WITHDRAWN: false positive")
    );
    for o in objs.iter().filter(|o| o["type"] == "indicator") {
        assert_eq!(o["revoked"], true);
    }
    assert!(
        objs.iter()
            .find(|o| o["type"] == "identity")
            .unwrap()
            .get("revoked")
            .is_none()
    );
}

#[test]
fn the_signature_in_an_exported_bundle_verifies_with_the_origins_key() {
    let id = identity();
    let imp = import_file("mitre-attack-apt40/apt40-G0065-C0049.stix21-DERIVED.bundle.json");
    let v = sign_draft(&id, &imp.drafts[0], 1);
    let b = bundle(export(&v));
    // What a receiver does with the bundle text alone and the origin's public key.
    let text = serde_json::to_string(&b).unwrap();
    let b: Value = serde_json::from_str(&text).unwrap();
    let objs = b["objects"].as_array().unwrap();
    assert!(
        objs.iter()
            .any(|o| o["id"] == SIGNATURE_EXTENSION_ID && o["type"] == "extension-definition")
    );
    let report = objs
        .iter()
        .find(|o| o["type"] == "report" && o["extensions"].get(SIGNATURE_EXTENSION_ID).is_some())
        .unwrap();
    let ext = &report["extensions"][SIGNATURE_EXTENSION_ID];
    assert_eq!(ext["extension_type"], "property-extension");
    assert_eq!(ext["signer"], "ws-cert");
    assert_eq!(ext["payload_type"], envelope::PAYLOAD_TYPE);
    let env = Envelope {
        payload: B64.decode(ext["payload"].as_str().unwrap()).unwrap(),
        key_id: ext["key_id"].as_str().unwrap().to_string(),
        signature: B64.decode(ext["signature"].as_str().unwrap()).unwrap(),
    };
    assert_eq!(env.item_id().to_hex(), ext["tanoa_item_id"]);
    let verified = envelope::verify(env.clone(), &keyring(&id), &Limits::default()).unwrap();
    assert_eq!(verified.value().title, report["name"]);
    assert_eq!(
        format_timestamp(verified.value().modified_ms),
        report["modified"]
    );
    // The signed payload carries the kept objects: they match the bundle's.
    let signed = kept_objects(verified.value());
    assert_eq!(signed.len(), 185);
    for o in &signed {
        assert!(objs.contains(o));
    }
    // A flipped bit is refused; another key is refused.
    let mut bad = env.clone();
    bad.payload[10] ^= 1;
    assert!(envelope::verify(bad, &keyring(&id), &Limits::default()).is_err());
    let other = SigningIdentity::new("ws-cert", SigningKey::from_bytes(&[8u8; 32]));
    assert!(envelope::verify(env, &keyring(&other), &Limits::default()).is_err());
}

/// A bundle of `n` distinct indicators over documentation ranges (IPv6 and domains), with one identity,
/// the TLP GREEN marking and a relationship per 1000 indicators to one malware.
pub(crate) fn synthetic_bundle(n: usize) -> Vec<u8> {
    let mut objs = Vec::with_capacity(n + 8);
    let ident = "identity--11111111-2222-4333-8444-555555555555";
    let malware = "malware--11111111-2222-4333-8444-666666666666";
    let green = markings::tlp2_id(Tlp::Green);
    objs.push(
        json!({"type": "identity", "spec_version": "2.1", "id": ident,
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "name": "Example CERT", "identity_class": "organization"}),
    );
    objs.push(markings::tlp2_marking_definition(Tlp::Green));
    objs.push(
        json!({"type": "malware", "spec_version": "2.1", "id": malware,
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "name": "ExampleRAT", "is_family": true, "object_marking_refs": [green]}),
    );
    for i in 0..n {
        let pattern = if i % 2 == 0 {
            format!(
                "[ipv6-addr:value = '2001:db8::{:x}:{:x}']",
                i / 65536,
                i % 65536
            )
        } else {
            format!("[domain-name:value = 'host{i}.bad.example']")
        };
        let uid = format!("{:08x}-0000-4000-8000-{:012x}", i, i);
        objs.push(json!({"type": "indicator", "spec_version": "2.1",
            "id": format!("indicator--{uid}"), "created_by_ref": ident,
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "pattern": pattern, "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
            "object_marking_refs": [green]}));
        if i % 1000 == 999 {
            objs.push(json!({"type": "relationship", "spec_version": "2.1",
                "id": format!("relationship--{uid}"), "created_by_ref": ident,
                "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                "relationship_type": "indicates", "source_ref": format!("indicator--{uid}"),
                "target_ref": malware, "object_marking_refs": [green]}));
        }
    }
    serde_json::to_vec(&json!({"type": "bundle",
        "id": "bundle--11111111-2222-4333-8444-777777777777", "objects": objs}))
    .unwrap()
}

#[test]
fn a_bundle_too_large_for_one_advisory_is_split_deterministically() {
    let n = 20_000;
    let bytes = synthetic_bundle(n);
    let o = ImportOptions::default();
    let imp = import_bundle_report(&bytes, &o).unwrap();
    let parts = &imp.drafts;
    assert!(parts.len() > 1, "{} parts", parts.len());
    assert_eq!(imp.summary.tlp, Tlp::Green);
    // Ids and titles name the parts.
    let base = draft_id(&parts[0]).strip_suffix("-p1").unwrap();
    assert!(base.starts_with("stix-") && base.len() == 17, "{base}");
    for (k, d) in parts.iter().enumerate() {
        assert_eq!(draft_id(d), format!("{base}-p{}", k + 1));
        assert!(
            d.title
                .ends_with(&format!("(part {} of {})", k + 1, parts.len())),
            "{}",
            d.title
        );
    }
    // Every part is accepted by the daemon's rules (payload and extras within the limits).
    let id = identity();
    let mut all_objects: HashMap<String, Value> = HashMap::new();
    let mut values = 0;
    for d in parts {
        let v = sign_draft(&id, d, 1);
        assert!(v.envelope().payload.len() <= Limits::default().max_payload_bytes);
        values += d.indicators.len();
        let kept = kept_objects(v.value());
        for o in &kept {
            // A part carries what its objects reference (identity, marking, malware).
            for r in ["created_by_ref", "target_ref"] {
                if let Some(t) = o.get(r).and_then(Value::as_str) {
                    assert!(
                        kept.iter().any(|k| k["id"] == t),
                        "{}: {t} missing",
                        draft_id(d)
                    );
                }
            }
            all_objects.insert(o["id"].as_str().unwrap().to_string(), o.clone());
        }
    }
    assert_eq!(values, n, "each indicator value indexed once");
    assert_eq!(all_objects.len(), imp.summary.objects);
    assert_eq!(imp.summary.values, n);
    // The same input gives the same parts.
    let again = import_bundle(&bytes, &o).unwrap();
    assert_eq!(&again, parts);
    // Exporting every part gives back every object once.
    let mut objs = Vec::new();
    for d in parts {
        objs.extend(export(&sign_draft(&id, d, 1)));
    }
    let b = bundle(objs);
    let exported = b["objects"].as_array().unwrap();
    let kept_once = exported
        .iter()
        .filter(|o| all_objects.contains_key(o["id"].as_str().unwrap()))
        .count();
    assert_eq!(kept_once, imp.summary.objects);
}

#[test]
fn a_hundred_thousand_indicators_import_in_parts_within_the_limits() {
    let n = 100_000;
    let bytes = synthetic_bundle(n);
    let imp = import_bundle_report(&bytes, &opts(Tlp::Green)).unwrap();
    let total: usize = imp.drafts.iter().map(|d| d.indicators.len()).sum();
    assert_eq!(total, n);
    assert!(imp.drafts.len() >= 2);
    for d in &imp.drafts {
        assert!(d.indicators.len() <= Limits::default().max_indicators);
        assert!(d.extras.len() <= Limits::default().max_extras_bytes);
    }
}

fn indicator_bundle(patterns: &[(&str, &str)]) -> Vec<u8> {
    let objects: Vec<Value> = patterns
        .iter()
        .map(|(id, p)| {
            json!({
                "type": "indicator", "spec_version": "2.1", "id": id,
                "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                "pattern": p, "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
        "objects": objects
    }))
    .unwrap()
}

#[test]
fn an_ip_in_a_domain_name_pattern_is_imported_as_an_address_and_reported() {
    let ip_id = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f";
    let bytes = indicator_bundle(&[
        (ip_id, "[domain-name:value = '198.51.100.7']"),
        (
            "indicator--0c7d6a8e-3b5f-4a57-9a11-5a2c9e7f1e01",
            "[domain-name:value = 'c2.apt40.example']",
        ),
    ]);
    let imp = import_bundle_report(&bytes, &opts(Tlp::Clear)).unwrap();
    let kinds: Vec<(IndicatorKind, &str)> = imp.drafts[0]
        .indicators
        .iter()
        .map(|i| (i.kind, i.value.as_str()))
        .collect();
    assert!(
        kinds.contains(&(IndicatorKind::Ipv4, "198.51.100.7")),
        "{kinds:?}"
    );
    assert!(
        !kinds.contains(&(IndicatorKind::Domain, "198.51.100.7")),
        "{kinds:?}"
    );
    assert!(kinds.contains(&(IndicatorKind::Domain, "c2.apt40.example")));
    assert_eq!(imp.summary.reclassified.len(), 1, "{:?}", imp.summary);
    assert_eq!(imp.summary.reclassified[0].id, ip_id);
    assert!(
        imp.summary.reclassified[0]
            .detail
            .contains("indexed as ipv4")
    );
}

#[test]
fn objects_stix2_validator_rejects_are_imported_with_a_warning_naming_them() {
    let bad = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f";
    let bytes = indicator_bundle(&[
        (bad, "[app:id = 'com.example.spyware']"),
        (
            "indicator--0c7d6a8e-3b5f-4a57-9a11-5a2c9e7f1e01",
            "[ipv4-addr:value = '198.51.100.1']",
        ),
    ]);
    let imp = import_bundle_report(&bytes, &opts(Tlp::Clear)).unwrap();
    let w = &imp.summary.validator_warnings;
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].id, bad);
    assert!(w[0].detail.contains("'app'"), "{w:?}");
    assert!(w[0].detail.contains("stix2-validator"), "{w:?}");
}
