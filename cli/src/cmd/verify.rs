//! `tanoa verify FILE --public-key HEX`: offline verification of an exported envelope.
//!
//! Owns: checking an exported envelope against a public key given by the operator, with
//! `tanoa_daemon::envelope::verify` and a one-key keyring, and reporting the precise reason.
//! Must never: contact a daemon, or trust a public key found inside the file.

use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};
use tanoa_daemon::envelope::{self, Keyring, PublicKeyRecord};
use tanoa_daemon::keys;
use tanoa_daemon::model::Limits;

use crate::args::GlobalArgs;
use crate::envfile::EnvelopeFile;
use crate::exit::{FAILED, Failure};
use crate::output;

/// `tanoa verify` arguments.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Exported envelope (JSON from `tanoa export --format envelope`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The signer's ed25519 public key, 64 hex digits (as `tanoa init` and `tanoa status`
    /// print it), obtained from the signer out of band.
    #[arg(long, value_name = "HEX")]
    pub public_key: String,
}

/// Result of verifying an exported envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Signature, origin and content check out.
    Valid {
        /// Item id (recomputed).
        item_id: String,
        /// Key id.
        key_id: String,
        /// Signer member id.
        signer: String,
        /// Advisory id.
        advisory_id: String,
        /// Revision.
        revision: u64,
        /// Title.
        title: String,
        /// Whether it is a withdrawal tombstone.
        withdrawn: bool,
    },
    /// Something does not check out.
    Invalid {
        /// Stable reason code (`bad_signature`, `key_mismatch`, `origin_mismatch`, …).
        reason: String,
        /// Human explanation.
        detail: String,
    },
}

impl Outcome {
    /// JSON shape of the result.
    pub fn to_json(&self, file: &EnvelopeFile) -> Value {
        match self {
            Outcome::Valid {
                item_id,
                key_id,
                signer,
                advisory_id,
                revision,
                title,
                withdrawn,
            } => json!({
                "valid": true,
                "item_id": item_id,
                "key_id": key_id,
                "signer": signer,
                "advisory_id": advisory_id,
                "origin": signer,
                "revision": revision,
                "title": title,
                "withdrawn": withdrawn,
            }),
            Outcome::Invalid { reason, detail } => json!({
                "valid": false,
                "reason": reason,
                "detail": detail,
                "item_id": file.item_id,
                "key_id": file.key_id,
                "signer": file.signer,
            }),
        }
    }

    /// Human text of the result.
    pub fn to_text(&self) -> String {
        match self {
            Outcome::Valid {
                item_id,
                key_id,
                signer,
                advisory_id,
                revision,
                title,
                withdrawn,
            } => format!(
                "VALID: signature verified\n  item      {item_id}\n  advisory  {signer}/{advisory_id} \
                 revision {revision}{}\n  title     {title}\n  signed by {signer} with key {key_id}",
                if *withdrawn { " (WITHDRAWAL)" } else { "" }
            ),
            Outcome::Invalid { reason, detail } => format!("INVALID ({reason}): {detail}"),
        }
    }
}

/// Verifies `file` against `public_key_hex`. A malformed key or file is a usage failure; a
/// failed check is `Outcome::Invalid`.
pub fn verify_file(
    file: &EnvelopeFile,
    name: &str,
    public_key_hex: &str,
) -> Result<Outcome, Failure> {
    let key = keys::parse_public_hex(public_key_hex)
        .map_err(|e| Failure::usage(format!("--public-key: {e}")))?;
    let env = file.to_envelope(name)?;
    let given = envelope::key_id_of(&key);
    if given != env.key_id {
        return Ok(Outcome::Invalid {
            reason: "key_mismatch".into(),
            detail: format!(
                "the envelope names signing key {:?}, but the public key given is {given}: \
                 get {}'s public key for {:?}",
                env.key_id, file.signer, env.key_id
            ),
        });
    }
    let mut ring = Keyring::new();
    ring.insert(PublicKeyRecord::new(file.signer.clone(), key, None, None));
    let verified = match envelope::verify(env, &ring, &Limits::default()) {
        Ok(v) => v,
        Err(e) => {
            return Ok(Outcome::Invalid {
                reason: e.reason().into(),
                detail: e.to_string(),
            });
        }
    };
    let item_id = verified.item_id().to_hex();
    if !file.item_id.trim().eq_ignore_ascii_case(&item_id) {
        return Ok(Outcome::Invalid {
            reason: "item_id_mismatch".into(),
            detail: format!(
                "the signature verifies, but the file claims item id {:?} while the payload's \
                 is {item_id}",
                file.item_id
            ),
        });
    }
    let a = verified.value();
    Ok(Outcome::Valid {
        item_id,
        key_id: verified.envelope().key_id.clone(),
        signer: verified.signer().to_string(),
        advisory_id: a.id.clone(),
        revision: a.revision,
        title: a.title.clone(),
        withdrawn: a.withdrawn,
    })
}

/// Runs `tanoa verify`: exit 0 when valid, 1 when invalid, 2 for a bad file or key.
pub fn run(a: VerifyArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let name = a.file.display().to_string();
    let file = EnvelopeFile::read(&a.file)?;
    let outcome = verify_file(&file, &name, &a.public_key)?;
    if g.json {
        output::print_json(&outcome.to_json(&file));
    } else {
        outln!("{}", outcome.to_text());
    }
    match outcome {
        Outcome::Valid { .. } => Ok(()),
        // Already explained on stdout: exit 1 without an extra error line.
        Outcome::Invalid { .. } => Err(Failure {
            code: FAILED,
            message: String::new(),
            hint: None,
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use ed25519_dalek::SigningKey;
    use tanoa_daemon::envelope::SigningIdentity;
    use tanoa_daemon::model::{Advisory, Indicator, IndicatorKind, Severity, Tlp};

    fn advisory(origin: &str) -> Advisory {
        Advisory {
            id: "ws-2026-0001".into(),
            origin: origin.into(),
            revision: 1,
            created_ms: 1_767_225_600_000,
            modified_ms: 1_767_225_600_000,
            valid_until_ms: None,
            tlp: Tlp::Green,
            audience: vec![],
            title: "APT40 activity in the Blue Pacific".into(),
            summary: "Sample advisory for tests.".into(),
            severity: Severity::High,
            actors: vec!["APT40".into()],
            cves: vec![],
            indicators: vec![Indicator {
                kind: IndicatorKind::Ipv4,
                value: "192.0.2.7".into(),
                confidence: 80,
                valid_until_ms: None,
                note: String::new(),
            }],
            references: vec![],
            withdrawn: false,
            withdrawn_reason: String::new(),
            extras: vec![],
        }
    }

    fn signed() -> (SigningIdentity, EnvelopeFile) {
        let id = SigningIdentity::new("ws-cert", SigningKey::from_bytes(&[7u8; 32]));
        let v = id.sign(advisory("ws-cert"), &Limits::default()).unwrap();
        let f = EnvelopeFile::from_envelope(v.envelope(), "ws-cert", None);
        (id, f)
    }

    fn hex_of(id: &SigningIdentity) -> String {
        keys::public_hex(&id.verifying_key())
    }

    #[test]
    fn a_good_envelope_verifies() {
        let (id, f) = signed();
        let out = verify_file(&f, "e.json", &hex_of(&id)).unwrap();
        let Outcome::Valid {
            signer,
            advisory_id,
            revision,
            ..
        } = &out
        else {
            panic!("expected valid, got {out:?}")
        };
        assert_eq!(
            (signer.as_str(), advisory_id.as_str(), *revision),
            ("ws-cert", "ws-2026-0001", 1)
        );
        assert!(out.to_text().starts_with("VALID"));
        assert_eq!(out.to_json(&f)["valid"], true);
    }

    #[test]
    fn a_tampered_payload_is_a_bad_signature() {
        let (id, f) = signed();
        let mut env = f.to_envelope("e.json").unwrap();
        let last = env.payload.len() - 1;
        env.payload[last] ^= 0x01;
        let mut tampered = EnvelopeFile::from_envelope(&env, "ws-cert", None);
        tampered.item_id = f.item_id.clone();
        let out = verify_file(&tampered, "e.json", &hex_of(&id)).unwrap();
        assert!(
            matches!(&out, Outcome::Invalid { reason, .. } if reason == "bad_signature"),
            "{out:?}"
        );
        assert!(
            out.to_text()
                .starts_with("INVALID (bad_signature): signature does not verify")
        );
        assert_eq!(out.to_json(&tampered)["reason"], "bad_signature");
    }

    #[test]
    fn each_failure_has_its_own_reason() {
        let (id, f) = signed();
        // Another key than the one that signed.
        let other = SigningIdentity::new("ws-cert", SigningKey::from_bytes(&[9u8; 32]));
        let out = verify_file(&f, "e.json", &hex_of(&other)).unwrap();
        assert!(matches!(&out, Outcome::Invalid { reason, .. } if reason == "key_mismatch"));
        // The file lies about the signer: the payload's origin does not match.
        let mut liar = f.clone();
        liar.signer = "fj-cert".into();
        let out = verify_file(&liar, "e.json", &hex_of(&id)).unwrap();
        assert!(
            matches!(&out, Outcome::Invalid { reason, .. } if reason == "origin_mismatch"),
            "{out:?}"
        );
        // Truncated signature.
        let mut env = f.to_envelope("e.json").unwrap();
        env.signature.truncate(40);
        let short = EnvelopeFile::from_envelope(&env, "ws-cert", None);
        let out = verify_file(&short, "e.json", &hex_of(&id)).unwrap();
        assert!(matches!(&out, Outcome::Invalid { reason, .. } if reason == "truncated_signature"));
        // Right signature, wrong item id in the file.
        let mut wrong_id = f.clone();
        wrong_id.item_id = "00".repeat(32);
        let out = verify_file(&wrong_id, "e.json", &hex_of(&id)).unwrap();
        assert!(matches!(&out, Outcome::Invalid { reason, .. } if reason == "item_id_mismatch"));
        // A malformed key is bad usage (exit 2), not an invalid envelope.
        let err = verify_file(&f, "e.json", "xyz").unwrap_err();
        assert_eq!(err.code, crate::exit::USAGE);
    }

    #[test]
    fn run_exits_1_on_invalid_and_0_on_valid() {
        let (id, f) = signed();
        let tmp = tempfile::tempdir().unwrap();
        let good = tmp.path().join("good.json");
        std::fs::write(&good, f.to_json()).unwrap();
        let g = GlobalArgs {
            json: true,
            ..GlobalArgs::default()
        };
        run(
            VerifyArgs {
                file: good.clone(),
                public_key: hex_of(&id),
            },
            &g,
        )
        .unwrap();
        let mut env = f.to_envelope("x").unwrap();
        env.payload[3] ^= 0x40;
        let bad = tmp.path().join("bad.json");
        std::fs::write(
            &bad,
            EnvelopeFile::from_envelope(&env, "ws-cert", None).to_json(),
        )
        .unwrap();
        let err = run(
            VerifyArgs {
                file: bad,
                public_key: hex_of(&id),
            },
            &g,
        )
        .unwrap_err();
        let fail = crate::exit::classify(&err);
        assert_eq!(fail.code, 1);
        let err = run(
            VerifyArgs {
                file: tmp.path().join("missing.json"),
                public_key: hex_of(&id),
            },
            &g,
        )
        .unwrap_err();
        assert_eq!(crate::exit::classify(&err).code, 2);
    }
}
