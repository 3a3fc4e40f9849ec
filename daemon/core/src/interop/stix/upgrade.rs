//! STIX 2.0 → 2.1, done before anything else looks at the objects.
//!
//! Which objects are 2.0 follows python-stix2's detection: an object whose `spec_version` is
//! "2.0", or that has none and is not a 2.1 cyber-observable, is 2.0; a bundle with a
//! `spec_version` is a 2.0 bundle. Upgrading an object: `type` first and `spec_version: "2.1"`
//! second, every other property after them in its original order; an `indicator`'s `labels`
//! become `indicator_types` (same place) and `pattern_type: "stix"` is appended; a `malware`
//! without `is_family` gets `is_family: true` appended; `created`/`modified` without a fraction
//! get `.000` (2.1 requires millisecond precision). A bundle loses its `spec_version`.
//! This is exactly how MITRE's APT40 set was converted (`*.stix21-DERIVED.bundle.json`).
//!
//! Owns: the upgrade rules above.
//! Must never: touch a 2.1 object.

use serde_json::{Map, Value};

use super::check::is_sco;

/// Upgrades a document (a bundle or a single object) in place to STIX 2.1; returns how many
/// objects were upgraded.
pub fn upgrade_to_21(doc: &mut Value) -> usize {
    let Some(root) = doc.as_object_mut() else {
        return 0;
    };
    let is_bundle = root.get("type").and_then(Value::as_str) == Some("bundle")
        || (root.get("objects").is_some_and(Value::is_array)
            && root
                .get("id")
                .and_then(Value::as_str)
                .is_some_and(|i| i.starts_with("bundle--")));
    if !is_bundle {
        return usize::from(upgrade_object(doc, false));
    }
    let bundle_20 = root.remove("spec_version").is_some();
    let mut n = 0;
    if let Some(Value::Array(objects)) = root.get_mut("objects") {
        for o in objects.iter_mut() {
            n += usize::from(upgrade_object(o, bundle_20));
        }
    }
    n
}

/// True when `o` is a STIX 2.0 object (see the module doc).
fn is_20(o: &Map<String, Value>, bundle_20: bool) -> bool {
    match o.get("spec_version").and_then(Value::as_str) {
        Some("2.0") => true,
        Some(_) => false,
        None => {
            let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
            bundle_20 || !(o.contains_key("id") && is_sco(ty))
        }
    }
}

fn pad_millis(v: &mut Value) {
    if let Value::String(s) = v
        && s.len() == 20
        && s.ends_with('Z')
        && !s.contains('.')
    {
        s.truncate(19);
        s.push_str(".000Z");
    }
}

/// Upgrades one object; `false` when it already was 2.1 (or is not an object).
fn upgrade_object(o: &mut Value, bundle_20: bool) -> bool {
    let Some(obj) = o.as_object_mut() else {
        return false;
    };
    if !obj.contains_key("type") || !is_20(obj, bundle_20) {
        return false;
    }
    let old = std::mem::take(obj);
    let ty = old
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut new = Map::with_capacity(old.len() + 2);
    if let Some(t) = old.get("type") {
        new.insert("type".into(), t.clone());
    }
    new.insert("spec_version".into(), Value::String("2.1".into()));
    let indicator = ty == "indicator";
    let has_types = old.contains_key("indicator_types");
    for (k, mut v) in old {
        match k.as_str() {
            "type" | "spec_version" => {}
            "labels" if indicator && !has_types => {
                new.insert("indicator_types".into(), v);
            }
            "created" | "modified" => {
                pad_millis(&mut v);
                new.insert(k, v);
            }
            _ => {
                new.insert(k, v);
            }
        }
    }
    if indicator && !new.contains_key("pattern_type") {
        new.insert("pattern_type".into(), Value::String("stix".into()));
    }
    if ty == "malware" && !new.contains_key("is_family") {
        new.insert("is_family".into(), Value::Bool(true));
    }
    *obj = new;
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn indicator_and_malware_rules() {
        let mut doc = json!({
            "type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
            "spec_version": "2.0",
            "objects": [
                {"id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", "type": "indicator",
                 "labels": ["malicious-activity"], "created": "2016-04-06T20:03:48Z",
                 "modified": "2016-04-06T20:03:48.000Z",
                 "pattern": "[ipv4-addr:value = '198.51.100.1']",
                 "valid_from": "2016-01-01T00:00:00Z"},
                {"type": "malware", "id": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b",
                 "labels": ["remote-access-trojan"]},
                {"type": "identity", "spec_version": "2.1",
                 "id": "identity--8c6af861-7b20-41ef-9b59-6344fd872a8f"}
            ]
        });
        assert_eq!(upgrade_to_21(&mut doc), 2);
        assert!(doc.get("spec_version").is_none());
        let ind = &doc["objects"][0];
        let keys: Vec<&str> = ind
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "type",
                "spec_version",
                "id",
                "indicator_types",
                "created",
                "modified",
                "pattern",
                "valid_from",
                "pattern_type"
            ]
        );
        assert_eq!(ind["created"], "2016-04-06T20:03:48.000Z");
        assert_eq!(ind["valid_from"], "2016-01-01T00:00:00Z");
        assert_eq!(doc["objects"][1]["is_family"], true);
        assert_eq!(doc["objects"][1]["labels"], json!(["remote-access-trojan"]));
        // A 2.1 object is untouched.
        assert_eq!(doc["objects"][2].as_object().unwrap().len(), 3);
    }

    #[test]
    fn a_21_sco_without_spec_version_is_not_upgraded() {
        let mut o = json!({"type": "ipv4-addr", "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd", "value": "198.51.100.3"});
        assert_eq!(upgrade_to_21(&mut o), 0);
        assert!(o.get("spec_version").is_none());
        let mut o =
            json!({"type": "identity", "id": "identity--8c6af861-7b20-41ef-9b59-6344fd872a8f"});
        assert_eq!(upgrade_to_21(&mut o), 1);
        assert_eq!(o["spec_version"], "2.1");
    }
}
