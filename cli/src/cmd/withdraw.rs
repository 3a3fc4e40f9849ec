//! `tanoa withdraw ID --reason TEXT`: publish a signed withdrawal tombstone.
//!
//! Owns: the withdraw command line and its output.
//! Must never: withdraw without a reason (every holder is shown it).

use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::connect;
use crate::exit::Failure;
use crate::output;

/// `tanoa withdraw` arguments.
#[derive(Debug, Clone, Args)]
pub struct WithdrawArgs {
    /// Advisory id of ours, or item id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Why it is withdrawn (required; shown to every holder).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

/// Runs `tanoa withdraw`.
pub async fn run(a: WithdrawArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    if a.reason.trim().is_empty() {
        return Err(Failure::usage("--reason must not be empty: every holder is shown it").into());
    }
    let mut client = connect::connect(g).await?;
    let r = client
        .withdraw(pb::WithdrawRequest {
            id: a.id.clone(),
            reason: a.reason.clone(),
        })
        .await
        .with_context(|| format!("withdraw {}", a.id))?
        .into_inner();
    if g.json {
        output::print_json(&json!({
            "id": a.id,
            "item_id": r.item_id,
            "revision": r.revision,
            "reason": a.reason,
        }));
    } else {
        outln!(
            "Withdrawn {} (tombstone revision {}, item {}).",
            a.id,
            r.revision,
            r.item_id
        );
        outln!(
            "Its indicators left the active index; `tanoa show {}` explains it.",
            a.id
        );
    }
    Ok(())
}
