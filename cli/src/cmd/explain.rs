//! `tanoa explain ADVISORY PEER`: would this node send an advisory to a peer, and why (or why
//! not): TLP, audience, origin rule, reconcile scope, direct delivery, link state.
//!
//! Owns: printing the Explain RPC. Both "would send" and "would not send" are answers, so both
//! exit 0; only a refusal (unknown advisory or peer, no federation) fails.
//! Must never: decide policy itself (the daemon's `policy` module answers).

use clap::Args;
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::cmd::peers::federation_refusal;
use crate::connect;
use crate::output;

/// `tanoa explain` arguments.
#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// The advisory: item id (64 hex digits), an advisory id of ours, or origin/advisory-id.
    #[arg(value_name = "ADVISORY")]
    pub id: String,
    /// The peer's member id, e.g. to-cert.
    #[arg(value_name = "PEER")]
    pub peer: String,
}

/// Runs `tanoa explain`.
pub async fn run(a: ExplainArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let mut client = connect::connect(g).await?;
    let r = client
        .explain(pb::ExplainRequest {
            id: a.id.clone(),
            peer: a.peer.clone(),
        })
        .await
        .map_err(|s| federation_refusal(&format!("explain {} {}", a.id, a.peer), s))?
        .into_inner();
    if g.json {
        output::print_json(&output::explain_json(&r));
    } else {
        outln!("{}", output::explain_text(&r));
    }
    Ok(())
}
