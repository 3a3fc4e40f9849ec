//! `tanoa show ID`: one advisory in full, with its signature check, history and equivocation
//! evidence; a withdrawn advisory leads with WITHDRAWN and its reason.
//!
//! Owns: fetching one advisory for people and scripts.
//! Must never: hide a failed verification or a withdrawal.

use anyhow::Context as _;
use clap::Args;
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::connect;
use crate::output;

/// `tanoa show` arguments.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// Item id (64 hex digits), advisory id of ours, or origin/advisory-id.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// Fetches one advisory.
pub async fn get(client: &mut connect::Client, id: &str) -> anyhow::Result<pb::GetResponse> {
    Ok(client
        .get(pb::GetRequest { id: id.to_string() })
        .await
        .with_context(|| format!("show {id}"))?
        .into_inner())
}

/// Runs `tanoa show`.
pub async fn run(a: ShowArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let mut client = connect::connect(g).await?;
    let r = get(&mut client, &a.id).await?;
    if g.json {
        output::print_json(&output::get_json(&r));
    } else {
        outln!("{}", output::show_text(&r));
    }
    Ok(())
}
