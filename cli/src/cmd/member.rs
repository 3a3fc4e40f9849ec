//! `tanoa member request`: on a new member, write a join request signed by its signing key
//! (id, name, endpoints, signing public key, TLS pins) for an existing member to propose.
//!
//! Owns: building and writing the request file (offline: no daemon needed).
//! Must never: print or write the private key.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tanoa_core::membership::SpkiPin;
use tanoa_core::roster::JoinRequest;

use crate::args::GlobalArgs;
use crate::exit::Failure;
use crate::{connect, outfile};

/// `tanoa member` commands.
#[derive(Debug, Clone, Subcommand)]
pub enum MemberCommand {
    /// Write a join request signed by this member's signing key (give it to an existing member,
    /// who runs `tanoa roster propose add FILE`).
    Request(RequestArgs),
}

/// `tanoa member request` arguments.
#[derive(Debug, Clone, Args)]
pub struct RequestArgs {
    /// Member id asked for, e.g. ck-cert.
    #[arg(long)]
    pub id: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// Peer endpoint HOST:PORT (repeatable, in dialling order). Spelled `--peer-endpoint`
    /// because the global `--endpoint` is the operator TCP listener to talk to.
    #[arg(long = "peer-endpoint", value_name = "HOST:PORT", required = true)]
    pub endpoints: Vec<String>,
    /// SHA-256 of the TLS certificate's public key to pin (64 hex digits; repeatable).
    #[arg(long = "tls-pin", value_name = "HEX")]
    pub tls_pins: Vec<String>,
    /// Signing key file [default: the key file of the config's [member]].
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Output file.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

/// The signing identity of `--signing-key`, or of the config's `[member] key_file`.
pub fn signing_identity(
    key: Option<&PathBuf>,
    g: &GlobalArgs,
) -> anyhow::Result<tanoa_core::envelope::SigningIdentity> {
    let path = match key {
        Some(p) => p.clone(),
        None => {
            let cfg = g
                .config
                .clone()
                .unwrap_or_else(|| connect::default_config_path(std::env::var_os("TANOA_HOME")));
            connect::load_config(&cfg)?.member.key_file
        }
    };
    tanoa_daemon::keys::load_key_file(&path)
        .map_err(|e| Failure::failed(format!("signing key {}: {e}", path.display())).into())
}

/// Runs `tanoa member …`.
pub fn run(c: MemberCommand, g: &GlobalArgs) -> anyhow::Result<()> {
    let MemberCommand::Request(a) = c;
    let identity = signing_identity(a.signing_key.as_ref(), g)?;
    let mut pins = Vec::new();
    for p in &a.tls_pins {
        pins.push(SpkiPin::from_hex(p).map_err(|e| Failure::usage(format!("--tls-pin: {e}")))?);
    }
    let r = JoinRequest::sign_by(&a.id, &a.name, a.endpoints.clone(), pins, &identity);
    r.verify()
        .map_err(|e| Failure::usage(format!("join request: {e}")))?;
    let text = serde_json::to_string_pretty(&r)? + "\n";
    outfile::write(&a.output, text.as_bytes(), a.force)?;
    if g.json {
        crate::output::print_json(&serde_json::to_value(&r)?);
    } else {
        outln!(
            "join request for {} written to {} (signing key {}): give it to a member, who runs \
             `tanoa roster propose add {}`",
            r.id,
            a.output.display(),
            identity.key_id(),
            a.output.display()
        );
    }
    Ok(())
}
