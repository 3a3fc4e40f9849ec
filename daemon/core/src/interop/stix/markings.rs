//! TLP marking definitions (TLP 2.0 and TLP 1.0, fixed ids) and the Tanoa signature extension.
//!
//! Owns: the fixed ids, the TLP 2.0 marking-definition objects as the extension's schema
//! defines them, and the `extension-definition` of the signature extension.
//! Must never: invent TLP ids; every id here is fixed by OASIS (TLP 2.0 extension schema, STIX
//! 2.1 §7.2.1.4 for TLP 1.0) or by Tanoa's own documentation (`docs/interop.md`).

use serde_json::{Value, json};

use crate::model::Tlp;

/// The TLP 2.0 marking extension (`extension-definition--60a3c5c5-…`), property `tlp_2_0`.
pub const TLP2_EXTENSION_ID: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";

/// `created` of the five TLP 2.0 marking definitions.
pub const TLP2_CREATED: &str = "2022-10-01T00:00:00.000Z";

/// TLP 2.0 marking-definition ids (fixed by the extension's schema).
pub const TLP2_IDS: [(Tlp, &str); 5] = [
    (
        Tlp::Clear,
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    ),
    (
        Tlp::Green,
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    ),
    (
        Tlp::Amber,
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    ),
    (
        Tlp::AmberStrict,
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    ),
    (
        Tlp::Red,
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
    ),
];

/// TLP 1.0 marking-definition ids (STIX 2.1 §7.2.1.4); WHITE maps to CLEAR.
pub const TLP1_IDS: [(Tlp, &str); 4] = [
    (
        Tlp::Clear,
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    ),
    (
        Tlp::Green,
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    ),
    (
        Tlp::Amber,
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    ),
    (
        Tlp::Red,
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
    ),
];

/// Which TLP standard a marking id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlpVersion {
    /// TLP 1.0 (`definition_type: tlp`).
    V1,
    /// TLP 2.0 (the marking extension).
    V2,
}

/// The TLP of a marking-definition id, if it is one of the fixed TLP 1.0 or 2.0 ids.
pub fn tlp_of_marking(id: &str) -> Option<(Tlp, TlpVersion)> {
    TLP2_IDS
        .iter()
        .find(|(_, i)| *i == id)
        .map(|(t, _)| (*t, TlpVersion::V2))
        .or_else(|| {
            TLP1_IDS
                .iter()
                .find(|(_, i)| *i == id)
                .map(|(t, _)| (*t, TlpVersion::V1))
        })
}

/// The TLP 2.0 marking-definition id of a label.
pub fn tlp2_id(tlp: Tlp) -> &'static str {
    TLP2_IDS
        .iter()
        .find(|(t, _)| *t == tlp)
        .map_or(TLP2_IDS[0].1, |(_, id)| id)
}

/// The TLP 2.0 marking-definition object of a label, exactly as the extension's schema (and the
/// published CLEAR/AMBER/AMBER+STRICT files) define it.
pub fn tlp2_marking_definition(tlp: Tlp) -> Value {
    let value = match tlp {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber+strict",
        Tlp::Red => "red",
    };
    json!({
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": tlp2_id(tlp),
        "created": TLP2_CREATED,
        "name": format!("TLP:{}", tlp.as_str()),
        "extensions": {
            TLP2_EXTENSION_ID: {
                "extension_type": "property-extension",
                "tlp_2_0": value,
            }
        }
    })
}

/// Id of the Tanoa signature extension (`extension-definition`), fixed for good: a receiver
/// looks the signature up under this key in the report's `extensions`.
pub const SIGNATURE_EXTENSION_ID: &str =
    "extension-definition--d3a6c1f0-5b7e-4c2a-9f1e-7a4b2c8e6d10";

/// Id of the identity that publishes the extension definition ("Tanoa", a system).
pub const TANOA_IDENTITY_ID: &str = "identity--0a8f3b5e-2c4d-4e6f-8a1b-3c5d7e9f1a2b";

/// `created`/`modified` of the fixed Tanoa objects (extension definition, Tanoa identity) and of
/// the origin identities (so every advisory of an origin names the same identity version).
pub const FIXED_CREATED: &str = "2026-01-01T00:00:00.000Z";

/// The identity that defines the signature extension.
pub fn tanoa_identity() -> Value {
    json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": TANOA_IDENTITY_ID,
        "created": FIXED_CREATED,
        "modified": FIXED_CREATED,
        "name": "Tanoa",
        "description": "Tanoa, the federation daemon for national CERTs; defines the Tanoa advisory signature extension.",
        "identity_class": "system",
    })
}

/// The `extension-definition` object of the signature extension.
pub fn signature_extension_definition() -> Value {
    json!({
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": SIGNATURE_EXTENSION_ID,
        "created_by_ref": TANOA_IDENTITY_ID,
        "created": FIXED_CREATED,
        "modified": FIXED_CREATED,
        "name": "Tanoa advisory signature",
        "description": "The origin CERT's ed25519 signature of the Tanoa advisory this report represents.",
        "schema": SIGNATURE_SCHEMA,
        "version": "1.0.0",
        "extension_types": ["property-extension"],
    })
}

/// Plain-text definition of the signature extension (the `schema` property).
pub const SIGNATURE_SCHEMA: &str = "Property extension on a report. Properties: \
tanoa_item_id (hex SHA-256 of the payload bytes), signer (origin member id), key_id \
(\"ed25519:\" + first 16 hex digits of SHA-256 of the public key), payload_type \
(\"application/vnd.tanoa.advisory.v1+protobuf\"), payload (base64 of the exact signed bytes: a \
protobuf tanoa.v1.Advisory), signature (base64 of the 64-byte ed25519 signature). To verify: \
decode payload, build PAE = \"DSSEv1 \" + len(payload_type) + \" \" + payload_type + \" \" + \
len(payload) + \" \" + payload (lengths in decimal ASCII), check the signature over PAE with the \
signer's public key (verify_strict), then decode the payload and compare it with the report. \
See docs/interop.md in the Tanoa repository.";
