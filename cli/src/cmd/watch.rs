//! `tanoa watch`: stream new, updated and withdrawn advisories until Ctrl-C.
//!
//! Owns: printing the operator API's event stream, one line per event (`--json`: one JSON
//! object per line).
//! Must never: buffer events (each line is flushed as it arrives).

use std::io::Write as _;

use anyhow::Context as _;
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::connect;
use crate::exit::Failure;
use crate::output;

/// Runs `tanoa watch`: exit 0 on Ctrl-C, 1 if the daemon ends the stream.
pub async fn run(g: &GlobalArgs) -> anyhow::Result<()> {
    let mut client = connect::connect(g).await?;
    let mut stream = client
        .watch(pb::WatchRequest {})
        .await
        .context("watch")?
        .into_inner();
    if !g.json {
        eprintln!("Watching for new, updated and withdrawn advisories (Ctrl-C to stop)…");
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            msg = stream.message() => {
                let msg = msg.map_err(|s| {
                    if s.code() == tonic::Code::Unavailable {
                        Failure::failed(format!("watch: {}", crate::exit::status_message(&s)))
                            .hint("run `tanoa watch` again once tanoad is back")
                            .into()
                    } else {
                        anyhow::Error::new(s).context("watch")
                    }
                })?;
                match msg {
                    Some(ev) => {
                        if g.json {
                            output::print_json_line(&output::event_json(&ev));
                        } else {
                            outln!("{}", output::event_line(&ev));
                        }
                        let _ = std::io::stdout().flush();
                    }
                    None => {
                        return Err(Failure::failed("the daemon ended the watch stream")
                            .hint("tanoad stopped or restarted; run `tanoa watch` again")
                            .into());
                    }
                }
            }
        }
    }
}
