//! `tanoa export ID --format envelope [-o FILE]`: write an advisory's signed envelope as JSON.
//!
//! Owns: building the exported-envelope file (see `crate::envfile`) from Get and Status.
//! Must never: re-encode or alter the payload (the bytes are exported exactly as signed).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::json;
use tanoa_daemon::envelope::Envelope;
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::cmd::show;
use crate::connect;
use crate::envfile::EnvelopeFile;
use crate::exit::Failure;
use crate::output;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ExportFormat {
    /// The signed envelope as JSON (tanoa-envelope-v1), for `tanoa verify` and `tanoa import`.
    #[default]
    Envelope,
}

/// `tanoa export` arguments.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Item id, advisory id of ours, or origin/advisory-id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// What to export.
    #[arg(long, value_enum, default_value_t = ExportFormat::Envelope)]
    pub format: ExportFormat,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Builds the export file from a Get response and, when we signed it, our Status keys.
pub fn envelope_file(
    get: &pb::GetResponse,
    status: Option<&pb::StatusResponse>,
) -> Result<EnvelopeFile, Failure> {
    let env = get
        .envelope
        .clone()
        .map(Envelope::from_proto)
        .ok_or_else(|| {
            Failure::failed(format!(
                "the daemon returned no envelope for {}",
                get.item_id
            ))
        })?;
    let signer = get
        .verification
        .as_ref()
        .map(|v| v.signer.clone())
        .filter(|s| !s.is_empty())
        .or_else(|| get.advisory.as_ref().map(|a| a.origin.clone()))
        .unwrap_or_default();
    let public_key = status
        .filter(|s| s.member_id == signer)
        .and_then(|s| s.keys.iter().find(|k| k.key_id == env.key_id))
        .map(|k| k.public_key.clone());
    Ok(EnvelopeFile::from_envelope(&env, &signer, public_key))
}

/// Runs `tanoa export`.
pub async fn run(a: ExportArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let mut client = connect::connect(g).await?;
    let get = show::get(&mut client, &a.id).await?;
    let status = client
        .status(pb::StatusRequest {})
        .await
        .context("export: status")?
        .into_inner();
    let file = envelope_file(&get, Some(&status))?;
    match &a.output {
        None => print!("{}", file.to_json()),
        Some(path) => {
            std::fs::write(path, file.to_json())
                .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
            if g.json {
                output::print_json(&json!({
                    "written": path,
                    "format": crate::envfile::FORMAT,
                    "item_id": file.item_id,
                    "key_id": file.key_id,
                    "signer": file.signer,
                    "public_key": file.public_key,
                }));
            } else {
                outln!(
                    "Wrote the signed envelope of item {} ({}) to {}.",
                    file.item_id,
                    file.signer,
                    path.display()
                );
                match &file.public_key {
                    Some(pk) => outln!(
                        "Verify it anywhere: tanoa verify {} --public-key {pk}",
                        path.display()
                    ),
                    None => outln!(
                        "Verify it with the signer's public key: tanoa verify {} --public-key <hex>",
                        path.display()
                    ),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn get() -> pb::GetResponse {
        pb::GetResponse {
            envelope: Some(pb::Envelope {
                payload: vec![1, 2, 3],
                key_id: "ed25519:0011223344556677".into(),
                signature: vec![5; 64],
            }),
            verification: Some(pb::Verification {
                valid: true,
                key_id: "ed25519:0011223344556677".into(),
                signer: "ws-cert".into(),
                detail: "signature verified".into(),
            }),
            ..Default::default()
        }
    }

    fn status(member: &str) -> pb::StatusResponse {
        pb::StatusResponse {
            member_id: member.into(),
            keys: vec![pb::KeyInfo {
                key_id: "ed25519:0011223344556677".into(),
                public_key: "ab".repeat(32),
                active: true,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn public_key_is_included_only_when_we_signed() {
        let f = envelope_file(&get(), Some(&status("ws-cert"))).unwrap();
        assert_eq!(f.public_key, Some("ab".repeat(32)));
        assert_eq!(f.signer, "ws-cert");
        assert_eq!(f.payload_b64, "AQID");
        let f = envelope_file(&get(), Some(&status("fj-cert"))).unwrap();
        assert_eq!(f.public_key, None);
        let v: serde_json::Value = serde_json::from_str(&f.to_json()).unwrap();
        assert!(v.get("public_key").is_none());
        let mut no_env = get();
        no_env.envelope = None;
        assert!(envelope_file(&no_env, None).is_err());
    }
}
