//! `tanoa import [--format F] FILE`: bring outside material into the daemon.
//!
//! `envelope` (an exported signed envelope) goes to ImportEnvelope, which verifies it against
//! its roster and stores it like one received from a peer. `stix` (a STIX 2.0/2.1 bundle, see
//! `import_stix`) and `misp` (a MISP event, see `import_misp`) are converted to drafts that this
//! member signs, published all or nothing with PublishBatch. `auto` (the default) picks the
//! format from the file's top-level JSON shape.
//!
//! Owns: reading the exported-envelope file, choosing the format, reporting the outcome.
//! Must never: verify or decode an envelope's payload itself (the daemon decides with its
//! roster), or publish part of a file when another part is invalid.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;
use tanoa_daemon::model::Tlp;
use tanoa_proto::v1 as pb;

use crate::args::{GlobalArgs, parse_tlp};
use crate::connect;
use crate::envfile::EnvelopeFile;
use crate::exit::Failure;
use crate::output;

/// Import formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ImportFormat {
    /// Decide from the file: a `tanoa-envelope-v1` object, a STIX `bundle`, or a MISP event.
    #[default]
    Auto,
    /// A signed envelope exported by `tanoa export --format envelope`.
    Envelope,
    /// A STIX 2.1 (or 2.0, upgraded) bundle.
    Stix,
    /// A MISP event (JSON, with or without the top-level "Event" wrapper).
    Misp,
}

/// `tanoa import` arguments.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The file to import.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// What the file is.
    #[arg(long, value_enum, default_value_t = ImportFormat::Auto)]
    pub format: ImportFormat,
    /// TLP for material that carries no TLP marking (stix, misp). Never lowers a marking the
    /// file carries: a more restrictive marking in the file wins.
    #[arg(long, value_name = "TLP", value_parser = parse_tlp)]
    pub tlp: Option<Tlp>,
    /// Audience member ids (comma-separated or repeated) for AMBER, AMBER+STRICT and RED.
    #[arg(long, value_name = "MEMBER", value_delimiter = ',')]
    pub audience: Vec<String>,
    /// Advisory id to publish under (stix, misp); default: derived from the source's ids.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Convert and validate only; publish nothing and print what would be published.
    #[arg(long)]
    pub dry_run: bool,
}

/// Picks the format of `bytes` from its top-level JSON shape.
pub fn detect_format(bytes: &[u8]) -> Option<ImportFormat> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let o = v.as_object()?;
    if o.get("format").and_then(|f| f.as_str()) == Some(crate::envfile::FORMAT) {
        return Some(ImportFormat::Envelope);
    }
    let bundle_id = o
        .get("id")
        .and_then(|i| i.as_str())
        .is_some_and(|i| i.starts_with("bundle--"));
    // A bundle missing its `type` is still a (broken) STIX bundle: let the STIX importer say
    // what is wrong with it.
    if o.get("type").and_then(|t| t.as_str()) == Some("bundle")
        || (bundle_id && o.contains_key("objects"))
    {
        return Some(ImportFormat::Stix);
    }
    if o.contains_key("Event") || (o.contains_key("Attribute") && o.contains_key("info")) {
        return Some(ImportFormat::Misp);
    }
    None
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
    let format = match a.format {
        ImportFormat::Auto => {
            let bytes = std::fs::read(&a.file)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", a.file.display())))?;
            detect_format(&bytes).ok_or_else(|| {
                Failure::usage(format!(
                    "{}: not a tanoa envelope, a STIX bundle or a MISP event",
                    a.file.display()
                ))
                .hint("name the format with --format envelope|stix|misp")
            })?
        }
        f => f,
    };
    match format {
        ImportFormat::Stix => crate::cmd::import_stix::run(&a, g).await,
        ImportFormat::Misp => crate::cmd::import_misp::run(&a, g).await,
        ImportFormat::Auto | ImportFormat::Envelope => run_envelope(&a, g).await,
    }
}

/// Imports an exported envelope.
async fn run_envelope(a: &ImportArgs, g: &GlobalArgs) -> anyhow::Result<()> {
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
    fn formats_are_detected_from_the_top_level_shape() {
        let d = |s: &str| detect_format(s.as_bytes());
        assert_eq!(
            d(r#"{"type":"bundle","id":"bundle--1","objects":[]}"#),
            Some(ImportFormat::Stix)
        );
        assert_eq!(
            d(r#"{"id":"bundle--1","objects":[]}"#),
            Some(ImportFormat::Stix)
        );
        assert_eq!(d(r#"{"Event":{"info":"x"}}"#), Some(ImportFormat::Misp));
        assert_eq!(
            d(r#"{"info":"x","Attribute":[]}"#),
            Some(ImportFormat::Misp)
        );
        assert_eq!(
            d(&format!(r#"{{"format":"{}"}}"#, crate::envfile::FORMAT)),
            Some(ImportFormat::Envelope)
        );
        assert_eq!(d(r#"{"id":"x"}"#), None);
        assert_eq!(d("not json"), None);
    }

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
