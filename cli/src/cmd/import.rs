//! `tanoa import FILE`: hand an exported envelope to the daemon (ImportEnvelope), which
//! verifies it against its roster and stores it like one received from a peer.
//!
//! Owns: reading the exported-envelope file and reporting the outcome.
//! Must never: verify or decode the payload itself (the daemon decides with its roster).

use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::connect;
use crate::envfile::EnvelopeFile;
use crate::exit::Failure;
use crate::output;

/// `tanoa import` arguments.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Exported envelope (JSON from `tanoa export --format envelope`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// A refused import. An envelope that does not verify is a failed operation (exit 1, like
/// `tanoa verify`), not bad usage, whatever status code carried it.
pub fn refusal(name: &str, status: tonic::Status) -> anyhow::Error {
    if status.code() == tonic::Code::InvalidArgument {
        return Failure::failed(format!(
            "import {name}: the daemon rejected the envelope: {}",
            crate::exit::status_message(&status)
        ))
        .hint(
            "check it offline with `tanoa verify FILE --public-key HEX`; the signer's key must be \
             listed under [[trusted]] in tanoad.toml",
        )
        .into();
    }
    anyhow::Error::new(status).context(format!("import {name}"))
}

/// Runs `tanoa import`.
pub async fn run(a: ImportArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let name = a.file.display().to_string();
    let file = EnvelopeFile::read(&a.file)?;
    let env = file.to_envelope(&name)?;
    let mut client = connect::connect(g).await?;
    let r = client
        .import_envelope(pb::ImportEnvelopeRequest {
            envelope: Some(env.to_proto()),
        })
        .await
        .map_err(|s| refusal(&name, s))?
        .into_inner();
    if g.json {
        output::print_json(&json!({
            "item_id": r.item_id,
            "outcome": r.outcome,
            "file": name,
        }));
    } else {
        let what = match r.outcome.as_str() {
            "inserted" => "verified and stored",
            "duplicate" => "already held (nothing changed)",
            "superseded" => "verified; a newer revision is already held",
            "equivocation" => "verified; EQUIVOCATION recorded (same revision, different payload)",
            other => other,
        };
        outln!("Imported {name}: {what}.\n  item {}", r.item_id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_envelope_is_a_failed_operation() {
        let err = refusal(
            "e.json",
            tonic::Status::invalid_argument("envelope rejected (bad_signature): altered"),
        );
        let f = crate::exit::classify(&err);
        assert_eq!(f.code, crate::exit::FAILED);
        assert!(f.message.contains("bad_signature"), "{}", f.message);
        assert!(f.hint.unwrap_or_default().contains("tanoa verify"));
        let err = refusal("e.json", tonic::Status::unavailable("down"));
        assert_eq!(crate::exit::classify(&err).code, crate::exit::FAILED);
    }
}
