//! `tanoa pki init`, `issue`, `self-signed` and `pin`: the federation's PKI on disk, and the
//! pins (SHA-256 of a certificate's public key) that `tls_pins` in `[[members]]` holds.
//!
//! Owns: the command-line side of `tanoa_pki` (arguments, summaries). Certificates and
//! the file layout are made by `tanoa_pki`, so tests build the same PKI in memory.
//! Must never: overwrite PKI material or print private keys.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;
use tanoa_pki::{self as pki, InitOptions, PkiError, Subject, WrittenFile};

use crate::args::GlobalArgs;
use crate::exit::Failure;
use crate::output;

/// `tanoa pki` commands.
#[derive(Debug, Clone, Subcommand)]
pub enum PkiCommand {
    /// Create a federation CA plus member and operator certificates in --out.
    Init(PkiInitArgs),
    /// Issue one member or operator certificate from an existing CA (--ca DIR).
    Issue(PkiIssueArgs),
    /// Print the pin of a certificate (sha256 of its public key) for `tls_pins` in [[members]].
    Pin(PkiPinArgs),
    /// Create a self-signed member certificate (no CA); pin it in the roster with its pin.
    SelfSigned(PkiSelfSignedArgs),
}

/// `tanoa pki pin` arguments.
#[derive(Debug, Clone, Args)]
pub struct PkiPinArgs {
    /// Certificate file (PEM).
    #[arg(value_name = "CERT")]
    pub cert: PathBuf,
}

/// `tanoa pki self-signed` arguments.
#[derive(Debug, Clone, Args)]
pub struct PkiSelfSignedArgs {
    /// Member id (URI SAN tanoa://member/<id>, DNS localhost, IP 127.0.0.1).
    #[arg(long, value_name = "ID")]
    pub member: String,
    /// Lifetime in days.
    #[arg(long, value_name = "N", default_value_t = pki::DEFAULT_DAYS)]
    pub days: u32,
    /// Output directory: writes members/<id>.pem and members/<id>.key (0600); never overwrites.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `tanoa pki init` arguments.
#[derive(Debug, Clone, Args)]
pub struct PkiInitArgs {
    /// Output directory (created; existing CA files are never overwritten).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Member ids to issue certificates for (URI SAN tanoa://member/<id>, DNS localhost,
    /// IP 127.0.0.1).
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    pub members: Vec<String>,
    /// Operator names to issue certificates for (URI SAN tanoa://operator/<name>).
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub operators: Vec<String>,
    /// Lifetime of member and operator certificates, in days.
    #[arg(long, value_name = "N", default_value_t = pki::DEFAULT_DAYS)]
    pub days: u32,
    /// Lifetime of the CA, in days.
    #[arg(long, value_name = "N", default_value_t = pki::DEFAULT_CA_DAYS)]
    pub ca_days: u32,
    /// Common name of the CA.
    #[arg(long, value_name = "NAME", default_value = "Tanoa federation CA")]
    pub ca_name: String,
    /// Also write negative fixtures under negative/: expired and not-yet-valid member
    /// certificates, a certificate from an untrusted CA, an operator certificate.
    #[arg(long)]
    pub negative: bool,
}

/// `tanoa pki issue` arguments (the CA directory is the global `--ca DIR`).
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["member", "operator"])))]
pub struct PkiIssueArgs {
    /// Issue a member certificate for this id.
    #[arg(long, value_name = "ID")]
    pub member: Option<String>,
    /// Issue an operator certificate for this name.
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// Lifetime in days.
    #[arg(long, value_name = "N", default_value_t = pki::DEFAULT_DAYS)]
    pub days: u32,
    /// Output directory: writes members/<id>.{pem,key} or operators/<name>.{pem,key}, and
    /// ca.pem if absent.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

fn pki_failure(e: PkiError) -> Failure {
    match e {
        PkiError::InvalidName { .. } | PkiError::Validity { .. } => Failure::usage(e.to_string()),
        PkiError::Pem { .. } => Failure::usage(e.to_string())
            .hint("--ca must be a directory made by `tanoa pki init` (ca.pem and ca.key)"),
        PkiError::Exists { .. } => Failure::failed(e.to_string()),
        PkiError::Io {
            ref path,
            ref source,
        } if source.kind() == std::io::ErrorKind::NotFound => {
            let msg = format!("{} does not exist", path.display());
            Failure::usage(msg)
        }
        other => Failure::failed(other.to_string()),
    }
}

fn mode_of(p: &Path) -> String {
    std::fs::metadata(p).map_or_else(
        |_| "?".into(),
        |m| format!("{:04o}", m.permissions().mode() & 0o777),
    )
}

fn files_json(files: &[WrittenFile]) -> serde_json::Value {
    files
        .iter()
        .map(|f| {
            json!({
                "path": f.path,
                "role": f.role,
                "private": f.private,
                "mode": mode_of(&f.path),
            })
        })
        .collect()
}

fn files_table(files: &[WrittenFile]) -> String {
    output::table(
        &["FILE", "WHAT", "MODE"],
        files
            .iter()
            .map(|f| {
                vec![
                    f.path.display().to_string(),
                    f.role.clone(),
                    mode_of(&f.path),
                ]
            })
            .collect(),
    )
}

/// Runs `tanoa pki …`.
pub fn run(cmd: PkiCommand, g: &GlobalArgs) -> anyhow::Result<()> {
    match cmd {
        PkiCommand::Init(a) => init(a, g),
        PkiCommand::Issue(a) => issue(a, g),
        PkiCommand::Pin(a) => pin(a, g),
        PkiCommand::SelfSigned(a) => self_signed(a, g),
    }
}

fn pin(a: PkiPinArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let pem = std::fs::read_to_string(&a.cert)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", a.cert.display())))?;
    let pin =
        pki::spki_pin(&pem).map_err(|e| Failure::usage(format!("{}: {e}", a.cert.display())))?;
    if g.json {
        output::print_json(&json!({"cert": a.cert, "pin": pin.to_string()}));
    } else {
        outln!("{pin}");
    }
    Ok(())
}

fn self_signed(a: PkiSelfSignedArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let cert = pki::self_signed_member(&a.member, a.days).map_err(pki_failure)?;
    let pin = pki::spki_pin(&cert.cert_pem).map_err(pki_failure)?;
    let files = pki::write_issued(&a.out, &cert, None)
        .map_err(pki_failure)
        .context(format!("pki self-signed --out {}", a.out.display()))?;
    if g.json {
        output::print_json(&json!({
            "member": a.member,
            "pin": pin.to_string(),
            "not_before": output::rfc3339(cert.not_before_ms),
            "not_after": output::rfc3339(cert.not_after_ms),
            "files": files_json(&files),
        }));
        return Ok(());
    }
    outln!(
        "Self-signed member certificate for {} valid {} to {}.",
        a.member,
        output::rfc3339(cert.not_before_ms),
        output::rfc3339(cert.not_after_ms)
    );
    outln!("{}", files_table(&files));
    outln!(
        "\nPin it in every member's roster entry for {}:\n  tls_pins = [\"{pin}\"]",
        a.member
    );
    Ok(())
}

fn init(a: PkiInitArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let opts = InitOptions {
        ca_name: a.ca_name.clone(),
        ca_days: a.ca_days,
        members: a.members.clone(),
        operators: a.operators.clone(),
        days: a.days,
        negative: a.negative,
    };
    let files = pki::init_dir(&a.out, &opts)
        .map_err(pki_failure)
        .context(format!("pki init --out {}", a.out.display()))?;
    if g.json {
        output::print_json(&json!({
            "out": a.out,
            "ca": {
                "name": a.ca_name,
                "cert": a.out.join(pki::CA_CERT_FILE),
                "key": a.out.join(pki::CA_KEY_FILE),
            },
            "members": a.members,
            "operators": a.operators,
            "negative": a.negative,
            "files": files_json(&files),
        }));
        return Ok(());
    }
    outln!("{}", files_table(&files));
    outln!(
        "\nTrust anchor: {} (configure it on every member). Keep {} offline: it signs every \
         certificate of the federation.",
        a.out.join(pki::CA_CERT_FILE).display(),
        a.out.join(pki::CA_KEY_FILE).display()
    );
    outln!(
        "Issue more with: tanoa pki issue --ca {} --member <id> --out {}",
        a.out.display(),
        a.out.display()
    );
    Ok(())
}

fn issue(a: PkiIssueArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let ca_dir = g.ca.clone().ok_or_else(|| {
        Failure::usage("pki issue needs --ca DIR (a directory made by `tanoa pki init`)")
    })?;
    let subject = match (&a.member, &a.operator) {
        (Some(m), None) => Subject::Member(m.clone()),
        (None, Some(o)) => Subject::Operator(o.clone()),
        _ => return Err(Failure::usage("give exactly one of --member and --operator").into()),
    };
    let ca = pki::load_ca_dir(&ca_dir)
        .map_err(pki_failure)
        .context(format!("loading the CA from {}", ca_dir.display()))?;
    let cert = ca.issue(&subject, a.days).map_err(pki_failure)?;
    let files = pki::write_issued(&a.out, &cert, Some(ca.cert_pem()))
        .map_err(pki_failure)
        .context(format!("pki issue --out {}", a.out.display()))?;
    if g.json {
        output::print_json(&json!({
            "subject": {"kind": subject.kind(), "name": subject.name(), "uri": subject.uri()},
            "ca": ca.name(),
            "not_before": output::rfc3339(cert.not_before_ms),
            "not_after": output::rfc3339(cert.not_after_ms),
            "files": files_json(&files),
        }));
        return Ok(());
    }
    outln!(
        "Issued {} ({}) by {:?}, valid {} to {}.",
        subject,
        subject.uri(),
        ca.name(),
        output::rfc3339(cert.not_before_ms),
        output::rfc3339(cert.not_after_ms)
    );
    outln!("{}", files_table(&files));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn issue_from_an_initialised_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let ca_dir = tmp.path().join("ca");
        init(
            PkiInitArgs {
                out: ca_dir.clone(),
                members: vec!["ws-cert".into()],
                operators: vec![],
                days: 10,
                ca_days: 100,
                ca_name: "Test CA".into(),
                negative: false,
            },
            &GlobalArgs::default(),
        )
        .unwrap();
        let out = tmp.path().join("fj");
        let g = GlobalArgs {
            ca: Some(ca_dir.clone()),
            json: true,
            ..GlobalArgs::default()
        };
        issue(
            PkiIssueArgs {
                member: Some("fj-cert".into()),
                operator: None,
                days: 5,
                out: out.clone(),
            },
            &g,
        )
        .unwrap();
        assert!(out.join("members/fj-cert.pem").is_file());
        assert_eq!(mode_of(&out.join("members/fj-cert.key")), "0600");
        assert_eq!(mode_of(&out.join("members/fj-cert.pem")), "0644");
        assert_eq!(
            std::fs::read(out.join("ca.pem")).unwrap(),
            std::fs::read(ca_dir.join("ca.pem")).unwrap()
        );
        // Issuing the same subject again into the same place is refused (exit 1).
        let err = issue(
            PkiIssueArgs {
                member: Some("fj-cert".into()),
                operator: None,
                days: 5,
                out,
            },
            &g,
        )
        .unwrap_err();
        assert_eq!(crate::exit::classify(&err).code, crate::exit::FAILED);
    }

    #[test]
    fn bad_names_and_missing_ca_are_usage_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let err = init(
            PkiInitArgs {
                out: tmp.path().join("x"),
                members: vec!["bad id".into()],
                operators: vec![],
                days: 10,
                ca_days: 100,
                ca_name: "Test CA".into(),
                negative: false,
            },
            &GlobalArgs::default(),
        )
        .unwrap_err();
        assert_eq!(crate::exit::classify(&err).code, crate::exit::USAGE);
        assert!(!tmp.path().join("x/ca.key").exists());
        let g = GlobalArgs {
            ca: Some(tmp.path().join("nope")),
            ..GlobalArgs::default()
        };
        let err = issue(
            PkiIssueArgs {
                member: None,
                operator: Some("alice".into()),
                days: 5,
                out: tmp.path().join("o"),
            },
            &g,
        )
        .unwrap_err();
        let f = crate::exit::classify(&err);
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(f.message.contains("does not exist"), "{}", f.message);
    }
}
