//! Unit tests over the vendored MISP material (`testdata/misp`): the CIRCL OSINT event, the
//! PyMISP fixture whose object uuids are `"a"` and `"b"`, and the APT40 galaxy clusters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;
use crate::model::draft::draft_to_advisory;
use crate::model::{
    Advisory, Draft, Indicator, IndicatorKind as K, Limits, Severity, Tlp, normalize_advisory,
    validate_advisory,
};

const CIRCL_UUID: &str = "57c4445b-c548-4654-af0b-4be3950d210f";
const REGKEY_UUID: &str = "57c54b0f-27a4-458b-8e63-4455950d210f";
const CREATED_MS: i64 = 1_770_000_000_000;

fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/misp")
        .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(testdata(rel)).unwrap()
}

fn circl() -> Vec<u8> {
    read(&format!("pymisp-tests/{CIRCL_UUID}.json"))
}

fn opts() -> ImportOptions {
    ImportOptions::default()
}

fn green() -> ImportOptions {
    ImportOptions {
        tlp: Some(Tlp::Green),
        ..ImportOptions::default()
    }
}

/// The advisory the daemon would sign from `draft` (normalized and validated as it does).
fn advisory(draft: &Draft) -> Advisory {
    let mut a = draft_to_advisory(draft, "ws-cert", id(draft), 1, CREATED_MS, CREATED_MS).unwrap();
    normalize_advisory(&mut a);
    validate_advisory(&a, &Limits::default()).unwrap();
    a
}

/// The draft's advisory id ("" when it has none).
fn id(draft: &Draft) -> &str {
    draft.id.as_deref().unwrap_or_default()
}

fn kept(draft: &Draft) -> Value {
    let v: Value = serde_json::from_slice(&draft.extras).unwrap();
    v["misp"].clone()
}

fn values(draft: &Draft) -> Vec<(i32, String)> {
    draft
        .indicators
        .iter()
        .map(|i| (kind(i.kind), i.value.clone()))
        .collect()
}

fn kind(k: K) -> i32 {
    crate::model::wire::kind_to_proto(k) as i32
}

#[test]
fn circl_event_becomes_one_advisory() {
    let imp = convert_event(&circl(), &opts()).unwrap();
    let d = &imp.draft;
    assert_eq!(id(d), format!("misp-{CIRCL_UUID}"));
    assert_eq!(d.title, "Ransomware - Xorist");
    assert_eq!(d.tlp, Tlp::Clear, "tlp:white is CLEAR");
    assert_eq!(d.severity, Severity::Low);
    assert!(d.audience.is_empty());
    assert_eq!(
        values(d),
        vec![
            (kind(K::Filename), "3Z4wnG9603it23y.exe".to_string()),
            (kind(K::Md5), "0749bae92ca336a02c83d126e04ec628".to_string()),
            (
                kind(K::Sha1),
                "77b0c41b7d340b8a3d903f21347bbf06aa766b5b".to_string()
            ),
            (
                kind(K::Sha256),
                "b3c4ae251f8094fa15b510051835c657eaef2a6cea46075d3aec964b14a99f68".to_string()
            ),
        ]
    );
    assert_eq!(
        d.indicators[1].note,
        "Imported via the Freetext Import Tool"
    );
    assert_eq!(
        d.references,
        vec![
            "https://www.virustotal.com/file/b3c4ae251f8094fa15b510051835c657eaef2a6cea46075d3aec964b14a99f68/analysis/1469554268/",
            "http://www.xylibox.com/2011/06/have-fun-with-trojan-ransomwin32xorist.html",
        ]
    );
    // The text attribute keeps its CR/LF in the summary.
    assert!(d.summary.contains("UPX packed"), "{}", d.summary);
    assert!(
        d.summary
            .contains("Key: 85350044dF4AC3518D185678A9414A7F,\r\nEncryption rounds:8,\r\n"),
        "{:?}",
        d.summary
    );
    assert!(d.summary.ends_with(&format!(
        "Imported from MISP event {CIRCL_UUID} (CIRCL, 2016-08-29)."
    )));
    let r = &imp.report;
    assert_eq!(r.attributes, 9);
    assert_eq!(r.indexed_attributes, 4);
    assert_eq!(r.indicators, 4);
    assert_eq!(r.references, 2);
    assert_eq!(r.in_summary, 2);
    assert_eq!(r.tlp, Some(Tlp::Clear));
    assert_eq!(r.tlp_tags, vec!["Event.Tag[0] tlp:white".to_string()]);
    // Only the registry key is left unindexed, named by its uuid.
    assert_eq!(r.not_indexed.len(), 1, "{:?}", r.not_indexed);
    let n = &r.not_indexed[0];
    assert_eq!(n.uuid.as_deref(), Some(REGKEY_UUID));
    assert_eq!(n.misp_type, "regkey|value");
    assert_eq!(n.reason.code(), "unmodelled");
    assert!(
        n.to_string()
            .starts_with("Event.Attribute[8] (uuid 57c54b0f")
    );
    // It is a valid advisory as the daemon will sign it.
    advisory(d);
}

#[test]
fn the_whole_event_is_kept_verbatim() {
    let bytes = circl();
    let d = import_event(&bytes, &opts()).unwrap();
    let original: Value = serde_json::from_slice(&bytes).unwrap();
    let kept = kept(&d);
    assert_eq!(kept, original["Event"]);
    // Same member order (preserve_order), so the kept text is the original re-serialized.
    assert_eq!(
        serde_json::to_string(&kept).unwrap(),
        serde_json::to_string(&original["Event"]).unwrap()
    );
    let regkey = kept["Attribute"][8]["value"].as_str().unwrap();
    assert_eq!(
        regkey,
        "Software\\Wow6432Node\\Microsoft\\Windows\\CurrentVersion\\Run|%TEMP%\\3Z4wnG9603it23y.exe"
    );
    assert_eq!(regkey.matches('\\').count(), 6);
    let text = kept["Attribute"][3]["value"].as_str().unwrap();
    assert_eq!(text.matches("\r\n").count(), 3);
    // The extras object has exactly one member.
    let extras: Value = serde_json::from_slice(&d.extras).unwrap();
    assert_eq!(extras.as_object().unwrap().len(), 1);
}

#[test]
fn wrapped_bare_and_api_forms_give_the_same_draft() {
    let bytes = circl();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let bare = serde_json::to_vec(&v["Event"]).unwrap();
    let api = serde_json::to_vec(&json!({ "response": [v.clone()] })).unwrap();
    let a = import_event(&bytes, &opts()).unwrap();
    assert_eq!(import_event(&bare, &opts()).unwrap(), a);
    assert_eq!(import_event(&api, &opts()).unwrap(), a);
    let two = serde_json::to_vec(&json!({ "response": [v.clone(), v] })).unwrap();
    let e = import_event(&two, &opts()).unwrap_err();
    assert_eq!(e.at, "response");
    assert!(e.reason.contains("holds 2 events"), "{e}");
}

#[test]
fn circl_event_round_trips_misp_tanoa_misp() {
    let bytes = circl();
    let original: Value = serde_json::from_slice(&bytes).unwrap();
    let a = advisory(&import_event(&bytes, &opts()).unwrap());
    let fe = export_event(&a).unwrap();
    assert!(fe.from_misp);
    assert_eq!(fe.uuid, CIRCL_UUID);
    assert_eq!(fe.file_name(), format!("{CIRCL_UUID}.json"));
    let orig = original["Event"].as_object().unwrap();
    // Nothing was missing and tlp:white already says CLEAR: the event is exported unchanged.
    assert_eq!(&fe.event, orig);
    let written: Value = serde_json::from_slice(&fe.to_json()).unwrap();
    assert_eq!(written, original);
    assert_eq!(fe.attributes().len(), 9);
    // Manifest entry in PyMISP's shape.
    assert_eq!(
        fe.manifest_entry(),
        json!({
            "Orgc": {"name": "CIRCL", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"},
            "Tag": [
                {"colour": "#ffffff", "local": false, "name": "tlp:white", "relationship_type": ""},
                {"colour": "#3d7a00", "local": false, "name": "circl:incident-classification=\"malware\"", "relationship_type": ""},
                {"colour": "#420053", "local": false, "name": "ms-caro-malware:malware-type=\"Ransom\"", "relationship_type": ""},
                {"colour": "#2c4f00", "local": false, "name": "malware_classification:malware-category=\"Ransomware\"", "relationship_type": ""},
            ],
            "info": "Ransomware - Xorist",
            "date": "2016-08-29",
            "analysis": 2,
            "threat_level_id": 3,
            "timestamp": 1472541011,
        })
    );
}

#[test]
fn hashes_follow_pymisp_including_composite_parts() {
    let a = advisory(&import_event(&circl(), &opts()).unwrap());
    let fe = export_event(&a).unwrap();
    let h = fe.value_md5s();
    // 8 simple attributes + regkey|value split in two parts.
    assert_eq!(h.len(), 10);
    // md5("UPX packed"), computed independently with coreutils md5sum.
    assert_eq!(h[2], "f15d9116ca9cb3bd485b8f6ae2e35446");
    let mut feed = Feed::new();
    feed.add(&a).unwrap();
    let csv = feed.hashes_csv();
    assert_eq!(csv.lines().count(), 10);
    assert!(
        csv.lines()
            .all(|l| l.len() == 32 + 1 + 36 && l.ends_with(&format!(",{CIRCL_UUID}")))
    );
    // The two parts of the registry attribute are hashed separately.
    let parts = [
        "Software\\Wow6432Node\\Microsoft\\Windows\\CurrentVersion\\Run",
        "%TEMP%\\3Z4wnG9603it23y.exe",
    ];
    for p in parts {
        let want = hex::encode(<md5::Md5 as md5::Digest>::digest(p.as_bytes()));
        assert!(h.contains(&want), "{p}");
    }
}

#[test]
fn fixture_with_uuids_a_and_b() {
    let bytes = read("pymisp-tests/event_obj_attr_tag.json");
    // No tlp:* tag anywhere: refused until the operator says which TLP applies.
    let e = convert_event(&bytes, &opts()).unwrap_err();
    assert_eq!(e.at, "Event.Tag");
    assert!(e.reason.contains("--tlp"), "{e}");

    let imp = convert_event(&bytes, &green()).unwrap();
    let d = &imp.draft;
    assert_eq!(d.tlp, Tlp::Green);
    assert_eq!(
        values(d),
        vec![
            (kind(K::Filename), "bar".to_string()),
            (kind(K::Url), "https://www.circl.lu/".to_string()),
        ]
    );
    assert_eq!(imp.report.objects, 2);
    assert_eq!(imp.report.attributes, 2);
    assert_eq!(imp.report.event_uuid, None);
    assert!(
        imp.report.warnings.iter().any(|w| w.contains("Event.info")),
        "{:?}",
        imp.report.warnings
    );
    assert_eq!(d.title, "MISP event (no info, no uuid)");
    // No event uuid: the id is derived from the content, the same every time.
    assert!(
        id(d).starts_with("misp-") && id(d).len() == 5 + 32,
        "{}",
        id(d)
    );
    assert_eq!(id(&import_event(&bytes, &green()).unwrap()), id(d));
    // The object uuids "a" and "b" are the origin's ids: kept verbatim, and exported as such.
    let k = kept(d);
    assert_eq!(k["Object"][0]["uuid"], "a");
    assert_eq!(k["Object"][1]["uuid"], "b");
    let a = advisory(d);
    let fe = export_event(&a).unwrap();
    assert_eq!(
        fe.uuid,
        export::advisory_event_uuid("ws-cert", id(d)).to_string()
    );
    let objs = fe.event["Object"].as_array().unwrap();
    assert_eq!(objs[0]["uuid"], "a");
    assert_eq!(objs[1]["uuid"], "b");
    assert_eq!(
        objs[0]["ObjectReference"],
        k["Object"][0]["ObjectReference"]
    );
    // Attributes without a uuid get a stable one; their values are untouched.
    let at0 = &objs[0]["Attribute"][0];
    assert_eq!(at0["value"], "bar");
    assert_eq!(at0["Tag"], json!([{"name": "blah"}]));
    let u0 = at0["uuid"].as_str().unwrap();
    assert!(is_uuid(u0));
    assert_eq!(export_event(&a).unwrap().event, fe.event, "deterministic");
    // What a feed needs was added: info, Orgc, date, timestamp, and the TLP tag.
    assert_eq!(fe.event["info"], d.title);
    assert_eq!(fe.event["Orgc"]["name"], "ws-cert");
    assert_eq!(fe.event["date"], "2026-02-02");
    assert_eq!(fe.event["timestamp"], "1770000000");
    assert_eq!(
        fe.event["Tag"],
        json!([{"colour": "#33FF00", "exportable": true, "name": "tlp:green"}])
    );
}

/// An event carrying the APT40 clusters of the three vendored galaxies, as MISP attaches them.
fn apt40_event() -> Value {
    let cluster_of = |file: &str| {
        let g: Value = serde_json::from_slice(&read(&format!("galaxy/{file}"))).unwrap();
        let mut c = g["values"][0].clone();
        c["type"] = g["type"].clone();
        c["tag_name"] = json!(format!(
            "misp-galaxy:{}=\"{}\"",
            g["type"].as_str().unwrap(),
            c["value"].as_str().unwrap()
        ));
        json!({ "type": g["type"], "name": g["name"], "GalaxyCluster": [c] })
    };
    json!({"Event": {
        "uuid": "5b4b6980-3bc7-11e8-84d6-879aaac37dd9",
        "info": "APT40 activity",
        "Tag": [{"name": "tlp:green"}],
        "Galaxy": [
            cluster_of("threat-actor.APT40-only.json"),
            cluster_of("microsoft-activity-group.APT40-only.json"),
            cluster_of("mitre-intrusion-set.APT40-only.json"),
        ],
        "Attribute": [
            {"uuid": "00000000-0000-4000-8000-000000000001", "type": "ip-dst", "category": "Network activity", "value": "192.0.2.10", "to_ids": true},
        ],
    }})
}

#[test]
fn galaxies_give_actors_with_their_aliases() {
    let bytes = serde_json::to_vec(&apt40_event()).unwrap();
    let d = import_event(&bytes, &opts()).unwrap();
    for name in [
        "APT40",
        "Leviathan",
        "Gingham Typhoon",
        "TEMP.Periscope",
        "BRONZE MOHAWK",
        "GADOLINIUM",
        "MUDCARP",
        "G0065",
    ] {
        assert!(
            d.actors.iter().any(|a| a == name),
            "{name} in {:?}",
            d.actors
        );
    }
    assert_eq!(d.actors[0], "APT40", "the cluster value comes first");
    // Aliases spelled differently in the three galaxies appear once (first spelling).
    let lower: Vec<String> = d.actors.iter().map(|a| a.to_lowercase()).collect();
    let mut unique = lower.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), lower.len(), "{:?}", d.actors);
    assert_eq!(
        d.actors
            .iter()
            .filter(|a| a.eq_ignore_ascii_case("gadolinium"))
            .count(),
        1
    );
    advisory(&d);
}

#[test]
fn galaxy_tags_and_threat_actor_attributes_name_actors() {
    let ev = json!({"Event": {
        "info": "x", "uuid": "00000000-0000-4000-8000-0000000000aa",
        "Tag": [{"name": "tlp:clear"}, {"name": "misp-galaxy:threat-actor=\"APT40\""},
                {"name": "misp-galaxy:mitre-attack-pattern=\"Phishing - T1566\""}],
        "Attribute": [
            {"type": "threat-actor", "value": "Leviathan", "to_ids": false},
            {"type": "threat-actor", "value": "bad\u{1b}name"},
            {"type": "ip-dst", "value": "192.0.2.1",
             "Tag": [{"name": "misp-galaxy:microsoft-activity-group=\"Gingham Typhoon\""}]},
        ]
    }});
    let imp = convert_event(&serde_json::to_vec(&ev).unwrap(), &opts()).unwrap();
    assert_eq!(
        imp.draft.actors,
        vec!["APT40", "Leviathan", "Gingham Typhoon"]
    );
    // A name the validator would refuse is reported, not dropped silently.
    assert!(
        imp.report
            .warnings
            .iter()
            .any(|w| w.contains("bad\\u{1b}name")),
        "{:?}",
        imp.report.warnings
    );
}

#[test]
fn most_restrictive_tlp_wins_and_tlp_option_never_lowers() {
    let ev = |event_tag: &str, attr_tag: Option<&str>| {
        let mut attr = json!({"uuid": "00000000-0000-4000-8000-000000000001", "type": "ip-dst", "value": "192.0.2.1"});
        if let Some(t) = attr_tag {
            attr["Tag"] = json!([{"name": t}]);
        }
        serde_json::to_vec(
            &json!({"Event": {"info": "t", "Tag": [{"name": event_tag}], "Attribute": [attr]}}),
        )
        .unwrap()
    };
    let amber = ImportOptions {
        audience: vec!["fj-cert".into()],
        ..opts()
    };
    let tlp =
        |bytes: &[u8], o: &ImportOptions| convert_event(bytes, o).map(|i| i.report.tlp.unwrap());
    assert_eq!(tlp(&ev("tlp:green", None), &opts()), Ok(Tlp::Green));
    // An attribute marked amber makes the whole advisory amber.
    assert_eq!(
        tlp(&ev("tlp:green", Some("tlp:amber")), &amber),
        Ok(Tlp::Amber)
    );
    assert_eq!(
        tlp(&ev("TLP:AMBER+STRICT", Some("tlp:amber")), &amber),
        Ok(Tlp::AmberStrict)
    );
    // --tlp clear does not lower a red tag; --tlp amber raises a green one.
    let o = ImportOptions {
        tlp: Some(Tlp::Clear),
        ..amber.clone()
    };
    assert_eq!(tlp(&ev("tlp:red", None), &o), Ok(Tlp::Red));
    let o = ImportOptions {
        tlp: Some(Tlp::Amber),
        ..amber.clone()
    };
    assert_eq!(tlp(&ev("tlp:green", None), &o), Ok(Tlp::Amber));
    // AMBER without an audience is refused, naming the option.
    let e = convert_event(&ev("tlp:amber", None), &opts()).unwrap_err();
    assert_eq!(e.at, "--audience");
    // GREEN with an audience is refused too.
    let e = convert_event(&ev("tlp:green", None), &amber).unwrap_err();
    assert_eq!(e.at, "--audience");
    // A tlp: tag that is no TLP 2.0 label is reported and ignored.
    let imp = convert_event(&ev("tlp:ex:chr", Some("tlp:green")), &opts()).unwrap();
    assert_eq!(imp.report.tlp, Some(Tlp::Green));
    assert!(imp.report.warnings.iter().any(|w| w.contains("tlp:ex:chr")));
    // A tag entry without a name could hide a marking: refused with its path.
    let bad = serde_json::to_vec(
        &json!({"Event": {"info": "t", "Tag": [{"name": "tlp:green"}, {"colour": "#fff"}]}}),
    )
    .unwrap();
    let e = convert_event(&bad, &opts()).unwrap_err();
    assert_eq!(e.at, "Event.Tag[1]");
}

#[test]
fn type_mapping_covers_composites_and_reports_what_is_not_indexed() {
    let ev = json!({"Event": {"info": "mapping", "uuid": "00000000-0000-4000-8000-0000000000bb",
        "Tag": [{"name": "tlp:clear"}],
        "Attribute": [
            {"uuid": "u-0", "type": "ip-src", "value": "198.51.100.7"},
            {"uuid": "u-1", "type": "ip-dst|port", "value": "2001:db8::5|443"},
            {"uuid": "u-2", "type": "domain|ip", "value": "Evil.Example|203.0.113.9"},
            {"uuid": "u-3", "type": "hostname", "value": "c2.evil.example"},
            {"uuid": "u-4", "type": "ip-dst", "value": "198.51.100.0/24"},
            {"uuid": "u-5", "type": "filename|sha256", "value": "a.exe|" },
            {"uuid": "u-6", "type": "filename|md5", "value": "b.exe|d41d8cd98f00b204e9800998ecf8427e"},
            {"uuid": "u-7", "type": "email-src", "value": "phish@evil.example"},
            {"uuid": "u-8", "type": "AS", "value": "64496", "to_ids": true},
            {"uuid": "u-9", "type": "vulnerability", "value": "cve-2021-44228"},
            {"uuid": "u-10", "type": "ip-dst", "value": "10.0.0.300"},
            {"uuid": "u-11", "type": "domain", "value": "context.example", "to_ids": false},
            {"uuid": "u-12", "type": "mutex", "value": "Global\\xyz"},
            {"uuid": "u-13", "type": "url", "value": "http://198.51.100.7/gate.php", "deleted": true},
            {"uuid": "u-14", "type": "uri", "value": "/gate.php"},
            {"uuid": "u-15", "type": "sha1", "value": "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709", "to_ids": "1"},
            {"uuid": "u-16", "type": "AS", "value": "AS64497"},
        ]
    }});
    let imp = convert_event(&serde_json::to_vec(&ev).unwrap(), &opts()).unwrap();
    let d = &imp.draft;
    let got = values(d);
    let want = vec![
        (kind(K::Ipv4), "198.51.100.7"),
        (kind(K::Ipv6), "2001:db8::5"),
        (kind(K::Domain), "evil.example"),
        (kind(K::Ipv4), "203.0.113.9"),
        (kind(K::Domain), "c2.evil.example"),
        (kind(K::Cidr), "198.51.100.0/24"),
        (kind(K::Filename), "a.exe"),
        (kind(K::Filename), "b.exe"),
        (kind(K::Md5), "d41d8cd98f00b204e9800998ecf8427e"),
        (kind(K::Email), "phish@evil.example"),
        (kind(K::Asn), "AS64496"),
        (kind(K::Sha1), "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    ];
    let want: Vec<(i32, String)> = want.into_iter().map(|(k, v)| (k, v.to_string())).collect();
    assert_eq!(got, want);
    assert_eq!(d.cves, vec!["CVE-2021-44228"]);
    let by_uuid = |u: &str| {
        imp.report
            .not_indexed
            .iter()
            .find(|n| n.uuid.as_deref() == Some(u))
            .unwrap_or_else(|| panic!("{u} not reported: {:?}", imp.report.not_indexed))
    };
    assert_eq!(by_uuid("u-5").reason.code(), "invalid", "empty digest");
    let bad_ip = by_uuid("u-10");
    assert_eq!(bad_ip.reason.code(), "invalid");
    assert!(
        bad_ip
            .to_string()
            .contains("\"10.0.0.300\" is not an IPv4 address"),
        "{bad_ip}"
    );
    assert!(
        bad_ip
            .to_string()
            .starts_with("Event.Attribute[10] (uuid u-10)")
    );
    assert_eq!(by_uuid("u-11").reason, NotIndexedReason::NotForIds);
    assert_eq!(by_uuid("u-12").reason.code(), "unmodelled");
    assert_eq!(by_uuid("u-13").reason, NotIndexedReason::Deleted);
    assert_eq!(by_uuid("u-14").reason.code(), "unmodelled");
    // AS defaults to to_ids false in MISP: without the flag it is context.
    assert_eq!(by_uuid("u-16").reason, NotIndexedReason::NotForIds);
    assert_eq!(imp.report.count("invalid"), 2);
    // The bad address is still in the kept event, as written.
    assert_eq!(kept(d)["Attribute"][10]["value"], "10.0.0.300");
    advisory(d);
}

#[test]
fn structural_errors_name_the_attribute() {
    let e = convert_event(b"{not json", &opts()).unwrap_err();
    assert_eq!(e.at, "file");
    let e = convert_event(b"[1,2]", &opts()).unwrap_err();
    assert!(e.reason.contains("not a MISP event"), "{e}");
    let e = convert_event(br#"{"type": "bundle"}"#, &opts()).unwrap_err();
    assert!(e.reason.contains("not a MISP event"), "{e}");
    let ev = json!({"Event": {"info": "t", "Tag": [{"name": "tlp:clear"}], "Attribute": [
        {"uuid": "00000000-0000-4000-8000-000000000001", "type": "ip-dst", "value": "192.0.2.1"},
        {"uuid": "00000000-0000-4000-8000-000000000002", "value": "192.0.2.2"},
    ]}});
    let e = convert_event(&serde_json::to_vec(&ev).unwrap(), &opts()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Event.Attribute[1] (uuid 00000000-0000-4000-8000-000000000002): has no \"type\""
    );
    let ev = json!({"Event": {"info": "t", "Tag": [{"name": "tlp:clear"}], "Object": [
        {"uuid": "o", "Attribute": [{"type": "ip-dst", "value": 7}]}]}});
    let e = convert_event(&serde_json::to_vec(&ev).unwrap(), &opts()).unwrap_err();
    assert_eq!(e.at, "Event.Object[0].Attribute[0]");
    let ev = json!({"Event": {"info": "t", "Tag": [{"name": "tlp:clear"}], "Attribute": {"a": 1}}});
    let e = convert_event(&serde_json::to_vec(&ev).unwrap(), &opts()).unwrap_err();
    assert_eq!(e.at, "Event.Attribute");
    let e = convert_event(
        &circl(),
        &ImportOptions {
            id: Some("bad id".into()),
            ..opts()
        },
    )
    .unwrap_err();
    assert_eq!(e.at, "--id");
}

#[test]
fn an_event_too_large_for_extras_is_refused() {
    let attrs: Vec<Value> = (0..6000)
        .map(|n| json!({"type": "text", "value": format!("{n:0>200}")}))
        .collect();
    let ev = json!({"Event": {"info": "big", "Tag": [{"name": "tlp:clear"}], "Attribute": attrs}});
    let e = convert_event(&serde_json::to_vec(&ev).unwrap(), &opts()).unwrap_err();
    assert_eq!(e.at, "Event");
    assert!(e.reason.contains("1048576"), "{e}");
}

fn native_advisory() -> Advisory {
    let ind = |kind: K, value: &str, note: &str| Indicator {
        kind,
        value: value.to_string(),
        confidence: 80,
        valid_until_ms: None,
        note: note.to_string(),
    };
    Advisory {
        id: "ws-2026-0042".into(),
        origin: "ws-cert".into(),
        revision: 2,
        created_ms: CREATED_MS,
        modified_ms: CREATED_MS + 86_400_000,
        valid_until_ms: None,
        tlp: Tlp::Amber,
        audience: vec!["fj-cert".into()],
        title: "APT40 activity in the Pacific".into(),
        summary: "Line one.\r\nLine two.".into(),
        severity: Severity::High,
        actors: vec!["APT40".into(), "Leviathan".into()],
        cves: vec!["CVE-2021-44228".into()],
        indicators: vec![
            ind(K::Ipv4, "192.0.2.1", "C2"),
            ind(K::Ipv6, "2001:db8::1", ""),
            ind(K::Cidr, "198.51.100.0/24", ""),
            ind(K::Domain, "evil.example", ""),
            ind(K::Url, "https://evil.example/a", ""),
            ind(K::Email, "phish@evil.example", ""),
            ind(K::Md5, "d41d8cd98f00b204e9800998ecf8427e", ""),
            ind(K::Sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709", ""),
            ind(K::Sha256, &"ab".repeat(32), ""),
            ind(K::Sha512, &"cd".repeat(64), ""),
            ind(K::Filename, "invoice.pdf.exe", ""),
            ind(K::Asn, "AS64496", ""),
        ],
        references: vec![
            "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a".into(),
        ],
        withdrawn: false,
        withdrawn_reason: String::new(),
        extras: Vec::new(),
    }
}

#[test]
fn native_advisory_becomes_a_new_event() {
    let a = native_advisory();
    validate_advisory(&a, &Limits::default()).unwrap();
    let fe = export_event(&a).unwrap();
    assert!(!fe.from_misp);
    let want_uuid = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        b"tanoa://advisory/ws-cert/ws-2026-0042",
    );
    assert_eq!(fe.uuid, want_uuid.to_string());
    let ev = &fe.event;
    assert_eq!(ev["info"], "APT40 activity in the Pacific");
    assert_eq!(ev["threat_level_id"], "1");
    assert_eq!(ev["date"], "2026-02-02");
    assert_eq!(ev["timestamp"], "1770086400");
    assert_eq!(ev["published"], true);
    assert_eq!(ev["Orgc"]["name"], "ws-cert");
    assert_eq!(
        ev["Tag"],
        json!([{"colour": "#FFC000", "exportable": true, "name": "tlp:amber"}])
    );
    let types: Vec<(&str, &str, bool)> = fe
        .attributes()
        .iter()
        .map(|at| {
            (
                at["type"].as_str().unwrap(),
                at["value"].as_str().unwrap(),
                at["to_ids"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        types[..12],
        [
            ("ip-dst", "192.0.2.1", true),
            ("ip-dst", "2001:db8::1", true),
            ("ip-dst", "198.51.100.0/24", true),
            ("domain", "evil.example", true),
            ("url", "https://evil.example/a", true),
            ("email-src", "phish@evil.example", true),
            ("md5", "d41d8cd98f00b204e9800998ecf8427e", true),
            ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709", true),
            (
                "sha256",
                "abababababababababababababababababababababababababababababababab",
                true
            ),
            (
                "sha512",
                "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",
                true
            ),
            ("filename", "invoice.pdf.exe", true),
            ("AS", "AS64496", true),
        ]
    );
    assert_eq!(
        types[12..],
        [
            ("vulnerability", "CVE-2021-44228", false),
            ("threat-actor", "APT40", false),
            ("threat-actor", "Leviathan", false),
            (
                "link",
                "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a",
                false
            ),
        ]
    );
    assert_eq!(fe.attributes()[0]["comment"], "C2");
    assert_eq!(ev["EventReport"][0]["content"], "Line one.\r\nLine two.");
    // Attribute uuids are stable across revisions (derived from the event uuid and the value).
    let mut next = a.clone();
    next.revision = 3;
    next.modified_ms += 1000;
    next.indicators.remove(1);
    let fe2 = export_event(&next).unwrap();
    assert_eq!(fe2.uuid, fe.uuid);
    assert_eq!(fe2.attributes()[0]["uuid"], fe.attributes()[0]["uuid"]);
    assert_eq!(fe2.attributes()[1]["uuid"], fe.attributes()[2]["uuid"]);
    // Re-importing the exported event gives back the indicators.
    let again = import_event(
        &fe.to_json(),
        &ImportOptions {
            audience: vec!["fj-cert".into()],
            ..opts()
        },
    )
    .unwrap();
    let back = advisory(&again);
    assert_eq!(back.indicators.len(), a.indicators.len());
    for (x, y) in back.indicators.iter().zip(&a.indicators) {
        assert_eq!((x.kind, &x.value), (y.kind, &y.value));
    }
    assert_eq!(back.cves, a.cves);
    assert_eq!(back.actors, a.actors);
    assert_eq!(back.references, a.references);
    assert_eq!(back.tlp, Tlp::Amber);
    assert_eq!(back.severity, Severity::High);
}

#[test]
fn a_raised_tlp_replaces_the_event_tlp_tag() {
    let bytes = circl();
    let d = import_event(
        &bytes,
        &ImportOptions {
            tlp: Some(Tlp::Green),
            ..opts()
        },
    )
    .unwrap();
    let a = advisory(&d);
    assert_eq!(a.tlp, Tlp::Green);
    let fe = export_event(&a).unwrap();
    let names: Vec<&str> = fe.event["Tag"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "circl:incident-classification=\"malware\"",
            "ms-caro-malware:malware-type=\"Ransom\"",
            "malware_classification:malware-category=\"Ransomware\"",
            "tlp:green",
        ]
    );
    // Attributes are untouched.
    let original: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(fe.event["Attribute"], original["Event"]["Attribute"]);
}

#[test]
fn withdrawn_advisories_soft_delete_their_attributes() {
    let mut a = advisory(&import_event(&circl(), &opts()).unwrap());
    a.withdrawn = true;
    a.withdrawn_reason = "false positive".into();
    a.revision = 2;
    a.modified_ms = CREATED_MS + 5000;
    let fe = export_event(&a).unwrap();
    assert!(fe.withdrawn);
    assert_eq!(fe.event["published"], false);
    assert_eq!(fe.event["timestamp"], "1770000005");
    assert!(
        fe.event["Tag"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == export::WITHDRAWN_TAG)
    );
    let original: Value = serde_json::from_slice(&circl()).unwrap();
    for (x, o) in fe
        .attributes()
        .iter()
        .zip(original["Event"]["Attribute"].as_array().unwrap())
    {
        assert_eq!(x["deleted"], true);
        assert_eq!(x["timestamp"], "1770000005");
        assert_eq!(x["value"], o["value"], "values untouched");
        assert_eq!(x["uuid"], o["uuid"]);
    }
    assert_eq!(fe.manifest_entry()["timestamp"], 1_770_000_005);
}

#[test]
fn feed_keeps_one_event_per_uuid_and_lists_every_file() {
    let a = advisory(&import_event(&circl(), &opts()).unwrap());
    let mut b = a.clone();
    b.id = "other-id".into();
    b.modified_ms += 1;
    let n = native_advisory();
    let mut feed = Feed::new();
    feed.add(&a).unwrap();
    feed.add(&n).unwrap();
    feed.add(&b).unwrap();
    assert_eq!(feed.len(), 2);
    assert_eq!(
        feed.duplicates,
        vec![DuplicateEvent {
            uuid: CIRCL_UUID.into(),
            kept: "ws-cert/other-id".into(),
            dropped: format!("ws-cert/misp-{CIRCL_UUID}"),
        }]
    );
    let files = feed.files();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 4);
    assert!(names.contains(&"manifest.json") && names.contains(&"hashes.csv"));
    let manifest: Value =
        serde_json::from_slice(&files.iter().find(|f| f.0 == "manifest.json").unwrap().1).unwrap();
    let m = manifest.as_object().unwrap();
    assert_eq!(m.len(), 2);
    for e in feed.events() {
        assert!(names.contains(&e.file_name().as_str()));
        assert_eq!(m[&e.uuid], e.manifest_entry());
    }
    let lines = feed.hashes_csv().lines().count();
    assert_eq!(lines, 10 + 16);
}

#[test]
fn tlp_tags_and_uuids_are_read_strictly() {
    assert_eq!(tag_tlp("tlp:white"), TagTlp::Label(Tlp::Clear));
    assert_eq!(tag_tlp("TLP:Amber+Strict"), TagTlp::Label(Tlp::AmberStrict));
    assert_eq!(tag_tlp("tlp:ex:chr"), TagTlp::Unknown);
    assert_eq!(tag_tlp("pap:red"), TagTlp::None);
    assert_eq!(tag_tlp("tl"), TagTlp::None);
    for t in Tlp::ALL {
        assert_eq!(tag_tlp(tlp_tag(t)), TagTlp::Label(t));
    }
    assert!(is_uuid(CIRCL_UUID));
    assert!(!is_uuid("a"));
    assert!(
        !is_uuid("57c4445bc5484654af0b4be3950d210f"),
        "simple form is not a file name we use"
    );
    assert!(!is_uuid("../../../../etc/passwd-0000-0000-000000000"));
}
