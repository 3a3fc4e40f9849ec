//! `tanoa status`: member, keys, counts, store size, uptime and version of the node.
//!
//! Owns: printing the Status RPC.
//! Must never: print anything secret (only public keys are shown).

use anyhow::Context as _;
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::connect;
use crate::output;

/// Runs `tanoa status`.
pub async fn run(g: &GlobalArgs) -> anyhow::Result<()> {
    let mut client = connect::connect(g).await?;
    let r = client
        .status(pb::StatusRequest {})
        .await
        .context("status")?
        .into_inner();
    if g.json {
        output::print_json(&output::status_json(&r));
    } else {
        outln!("{}", output::status_text(&r));
    }
    Ok(())
}
