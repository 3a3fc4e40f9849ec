//! `tanoa peers`: the federation state of each roster peer as this node sees it (link, last
//! successful sync, traffic, rejections by reason, backlog).
//!
//! Owns: printing the Peers RPC, and the hints of the federation commands' refusals.
//! Must never: change anything on the node (it only reads).

use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::connect;
use crate::exit::{self, Failure};
use crate::output;

/// Hint when the node has no federation.
pub const NOT_FEDERATING_HINT: &str = "add a [peer] section and a [[members]] roster to its \
     tanoad.toml (see certs/README.md), or try `tanoa demo` for a local federation of five";

/// Turns a refusal of a federation request (`what` names it, e.g. `explain`) into an error with
/// the hint an operator needs: not federating, unknown peer, or the generic one.
pub fn federation_refusal(what: &str, status: tonic::Status) -> anyhow::Error {
    let msg = exit::status_message(&status);
    if exit::is_transport_failure(&status) {
        return anyhow::Error::new(status).context(what.to_string());
    }
    if msg.contains("does not federate") {
        return Failure::failed(format!("{what}: {msg}"))
            .hint(NOT_FEDERATING_HINT)
            .into();
    }
    if msg.contains("is not a peer") {
        return Failure::failed(format!("{what}: {msg}"))
            .hint("`tanoa peers` lists the roster members this node federates with")
            .into();
    }
    anyhow::Error::new(status).context(what.to_string())
}

/// Runs `tanoa peers`.
pub async fn run(g: &GlobalArgs) -> anyhow::Result<()> {
    let mut client = connect::connect(g).await?;
    let r = client
        .peers(pb::PeersRequest {})
        .await
        .map_err(|s| federation_refusal("peers", s))?
        .into_inner();
    if g.json {
        output::print_json(&output::peers_json(&r));
    } else {
        outln!("{}", output::peers_text(&r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn refusals_get_the_hint_that_helps() {
        let e = federation_refusal(
            "sync now",
            tonic::Status::failed_precondition("this node does not federate: add a [peer] section"),
        );
        let f = exit::classify(&e);
        assert_eq!(f.code, exit::FAILED);
        assert!(
            f.message
                .starts_with("sync now: this node does not federate")
        );
        assert!(f.hint.unwrap().contains("tanoa demo"));
        let e = federation_refusal(
            "explain",
            tonic::Status::not_found("\"xx-cert\" is not a peer of this member"),
        );
        let f = exit::classify(&e);
        assert_eq!(f.code, exit::FAILED);
        assert!(f.hint.unwrap().contains("tanoa peers"));
        let e = federation_refusal("explain", tonic::Status::not_found("no advisory x/y"));
        let f = exit::classify(&e);
        assert_eq!(f.message, "explain: daemon refused: no advisory x/y");
        assert!(f.hint.unwrap().contains("tanoa list"));
    }
}
