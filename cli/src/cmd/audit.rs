//! `tanoa audit [--limit N]`: recent audit-log entries, newest first.
//!
//! Owns: printing the Audit RPC.
//! Must never: alter the audit log.

use anyhow::Context as _;
use clap::Args;
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::connect;
use crate::output;

/// `tanoa audit` arguments.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// At most this many entries (0 = the daemon's default of 100).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub limit: u32,
}

/// Runs `tanoa audit`.
pub async fn run(a: AuditArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let mut client = connect::connect(g).await?;
    let r = client
        .audit(pb::AuditRequest { limit: a.limit })
        .await
        .context("audit")?
        .into_inner();
    if g.json {
        output::print_json(&output::audit_json(&r));
    } else {
        outln!("{}", output::audit_text(&r));
    }
    Ok(())
}
