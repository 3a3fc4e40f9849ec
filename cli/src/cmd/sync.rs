//! `tanoa sync now [PEER]`: start a reconciliation at once, with one peer or with the least
//! recently synced one, and say which peer was chosen.
//!
//! Also `tanoa reload`: re-read the daemon's config and TLS files now (as SIGHUP).
//!
//! Owns: the `sync` command group and printing the SyncNow RPC; `reload` and printing the
//! Reload RPC.
//! Must never: wait for the reconciliation to finish (`tanoa peers` shows its outcome).

use clap::{Args, Subcommand};
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::cmd::peers::federation_refusal;
use crate::connect;
use crate::output;

/// `tanoa sync` commands.
#[derive(Debug, Clone, Subcommand)]
pub enum SyncCommand {
    /// Start a reconciliation now (with PEER, or the least recently synced peer); prints the peer.
    Now(SyncNowArgs),
}

/// `tanoa sync now` arguments.
#[derive(Debug, Clone, Args)]
pub struct SyncNowArgs {
    /// Peer member id [default: the least recently synced peer].
    #[arg(value_name = "PEER")]
    pub peer: Option<String>,
}

/// Runs `tanoa sync …`.
pub async fn run(c: SyncCommand, g: &GlobalArgs) -> anyhow::Result<()> {
    let SyncCommand::Now(a) = c;
    let mut client = connect::connect(g).await?;
    let what = match &a.peer {
        Some(p) => format!("sync now {p}"),
        None => "sync now".to_string(),
    };
    let r = client
        .sync_now(pb::SyncNowRequest {
            peer: a.peer.clone().unwrap_or_default(),
        })
        .await
        .map_err(|s| federation_refusal(&what, s))?
        .into_inner();
    if g.json {
        output::print_json(&output::sync_now_json(&r));
    } else {
        outln!("{}", output::sync_now_text(&r, a.peer.as_deref()));
    }
    Ok(())
}

/// Runs `tanoa reload`.
pub async fn reload(g: &GlobalArgs) -> anyhow::Result<()> {
    let mut client = connect::connect(g).await?;
    let r = client
        .reload(pb::ReloadRequest {})
        .await
        .map_err(|s| anyhow::Error::new(s).context("reload"))?
        .into_inner();
    if g.json {
        output::print_json(&serde_json::json!({
            "applied": r.applied,
            "restart_required": r.restart_required,
        }));
        return Ok(());
    }
    if r.applied.is_empty() {
        outln!("Reloaded: nothing changed that applies live.");
    } else {
        outln!("Reloaded; applied:");
        for a in &r.applied {
            outln!("  {a}");
        }
    }
    // A new signing key the daemon could not take is reported with the settings that need a
    // restart, as "member.key_file not applied: why"; a restart would not take it either.
    let (not_applied, restart): (Vec<&String>, Vec<&String>) = r
        .restart_required
        .iter()
        .partition(|k| k.contains(" not applied: "));
    for k in not_applied {
        outln!("Not applied (the running value stays): {k}");
    }
    if !restart.is_empty() {
        outln!(
            "Needs a restart to take effect: {}",
            restart
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
