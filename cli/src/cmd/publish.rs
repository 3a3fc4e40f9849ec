//! `tanoa publish FILE`: publish an advisory file (JSON or TOML).
//!
//! Owns: reading the advisory file through `tanoa_daemon::model::draft` (so the CLI and the
//! daemon read the format the same way) and reporting what the daemon assigned.
//! Must never: sign or normalize anything itself (the daemon does), or retry a publish.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use tanoa_daemon::model::draft::{self, DraftError};
use tanoa_daemon::model::{Draft, wire};
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::connect;
use crate::exit::Failure;
use crate::output;

/// Where the advisory file format is documented.
pub const FORMAT_HINT: &str =
    "the format is documented in docs/advisory-format.md; see examples/apt40-advisory.toml";

/// `tanoa publish` arguments.
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// Advisory file, *.json or *.toml (see examples/apt40-advisory.toml). Reusing the `id` of
    /// one of our advisories publishes its next revision.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// A bad advisory file as a usage failure (exit 2) listing every problem on its own line.
pub fn draft_failure(e: &DraftError) -> Failure {
    match e {
        DraftError::Invalid { file, errors } => {
            let mut msg = format!("advisory file {file} is invalid:");
            for err in errors.errors() {
                msg.push('\n');
                msg.push_str(&err.to_string());
            }
            // `ValidationErrors` ends its text with "; and N more" when it kept only the first.
            let all = errors.to_string();
            if let Some(rest) = all
                .rsplit_once("; and ")
                .map(|(_, r)| r)
                .filter(|r| r.ends_with(" more"))
            {
                msg.push_str(&format!("\n(and {rest})"));
            }
            Failure::usage(msg).hint(format!("fix each field listed; {FORMAT_HINT}"))
        }
        DraftError::Syntax { .. } | DraftError::UnknownFormat { .. } => {
            Failure::usage(e.to_string()).hint(FORMAT_HINT)
        }
        DraftError::Io { .. } => Failure::usage(e.to_string()),
    }
}

/// A daemon refusal of a draft: `InvalidArgument` lists each field on its own line (exit 2).
pub fn refusal(file: &str, status: tonic::Status) -> anyhow::Error {
    if status.code() == tonic::Code::InvalidArgument {
        let msg = status.message();
        let msg = msg.strip_prefix("invalid advisory: ").unwrap_or(msg);
        let lines: Vec<&str> = msg.split("; ").collect();
        return Failure::usage(format!(
            "the daemon refused advisory file {file}:\n{}",
            lines.join("\n")
        ))
        .hint(format!("fix each field listed; {FORMAT_HINT}"))
        .into();
    }
    anyhow::Error::new(status).context(format!("publish {file}"))
}

/// Reads and parses an advisory file (the core parses; the file is read here).
pub(crate) fn read_draft(path: &std::path::Path) -> Result<Draft, DraftError> {
    draft::read_draft(path, |p| std::fs::read_to_string(p))
}

/// Runs `tanoa publish`.
pub async fn run(a: PublishArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let name = a.file.display().to_string();
    let draft = read_draft(&a.file).map_err(|e| draft_failure(&e))?;
    let mut client = connect::connect(g).await?;
    let r = client
        .publish(pb::PublishRequest {
            draft: Some(wire::draft_to_proto(&draft)),
        })
        .await
        .map_err(|s| refusal(&name, s))?
        .into_inner();
    print_published(&r, &name, g.json);
    Ok(())
}

/// Prints a publish response.
pub fn print_published(r: &pb::PublishResponse, file: &str, json: bool) {
    if json {
        output::print_json(&json!({
            "item_id": r.item_id,
            "advisory_id": r.advisory_id,
            "revision": r.revision,
            "origin": r.origin,
            "file": file,
            "warnings": output::warnings_json(&r.warnings),
        }));
        return;
    }
    outln!(
        "Published {}/{} revision {} (signed, stored durably).",
        r.origin,
        r.advisory_id,
        r.revision
    );
    outln!(
        "{}",
        output::kv_table(&[
            ("Item id", r.item_id.clone()),
            ("Advisory id", r.advisory_id.clone()),
            ("Revision", r.revision.to_string()),
            ("Origin", r.origin.clone()),
        ])
    );
    if !r.warnings.is_empty() {
        outln!("{}", output::warnings_text(&r.warnings));
    }
    outln!("Inspect it: tanoa show {}", r.advisory_id);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_example_advisory_files_read_as_drafts() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for f in [
            "examples/apt40-advisory.toml",
            "examples/apt40-advisory.json",
        ] {
            let d = read_draft(&root.join(f)).unwrap();
            assert_eq!(d.id.as_deref(), Some("apt40-blue-pacific"), "{f}");
            assert!(!d.indicators.is_empty());
        }
    }

    #[test]
    fn invalid_files_list_each_field_and_exit_2() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("bad.toml");
        std::fs::write(
            &p,
            "tlp = \"purple\"\ntitle = \"x\"\n[[indicators]]\nkind = \"ipv5\"\nvalue = \"192.0.2.1\"\n",
        )
        .unwrap();
        let f = draft_failure(&read_draft(&p).unwrap_err());
        assert_eq!(f.code, crate::exit::USAGE);
        let lines: Vec<&str> = f.message.lines().collect();
        assert!(lines[0].contains("is invalid:"), "{}", f.message);
        assert!(
            lines.iter().any(|l| l.starts_with("tlp: ")),
            "{}",
            f.message
        );
        assert!(
            lines.iter().any(|l| l.starts_with("indicators[0].kind: ")),
            "{}",
            f.message
        );
        assert!(f.hint.unwrap().contains("docs/advisory-format.md"));

        let p = tmp.path().join("bad.json");
        std::fs::write(&p, "{\"tlp\": \"GREEN\", \"titel\": \"x\"}").unwrap();
        let f = draft_failure(&read_draft(&p).unwrap_err());
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(f.message.contains("titel"), "{}", f.message);

        let f = draft_failure(&read_draft(&tmp.path().join("a.yaml")).unwrap_err());
        assert_eq!(f.code, crate::exit::USAGE);
    }

    #[test]
    fn daemon_refusals_of_drafts_are_listed_per_field() {
        let err = refusal(
            "a.toml",
            tonic::Status::invalid_argument(
                "invalid advisory: indicators[0].value: \"10.0.0.300\" is not an IPv4 address; \
                 title: must not be empty",
            ),
        );
        let f = crate::exit::classify(&err);
        assert_eq!(f.code, 2);
        assert!(
            f.message.contains("\nindicators[0].value: "),
            "{}",
            f.message
        );
        assert!(f.message.contains("\ntitle: must not be empty"));
        let err = refusal("a.toml", tonic::Status::permission_denied("no"));
        assert_eq!(crate::exit::classify(&err).code, 1);
    }
}
