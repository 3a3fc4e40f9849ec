//! `tanoa list`: advisories held (latest revision of each), filtered, newest first.
//!
//! Owns: the list filters on the command line and their mapping to `ListRequest`.
//! Must never: filter or sort on the client side (the daemon does, so `--limit` means the same
//! thing everywhere).

use clap::Args;
use tanoa_daemon::model::{Tlp, wire};
use tanoa_proto::v1 as pb;

use crate::args::{GlobalArgs, Since, parse_since, parse_tlp};
use crate::connect;
use crate::output;

/// `tanoa list` arguments.
#[derive(Debug, Clone, Default, Args)]
pub struct ListArgs {
    /// Only advisories from this origin member id.
    #[arg(long, value_name = "ID")]
    pub origin: Option<String>,
    /// Only this TLP label (CLEAR, GREEN, AMBER, AMBER+STRICT, RED).
    #[arg(long, value_name = "TLP", value_parser = parse_tlp)]
    pub tlp: Option<Tlp>,
    /// Only advisories modified since: RFC 3339 time, date, or duration back from now (24h, 7d).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<Since>,
    /// Only titles containing this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    /// Include withdrawn advisories.
    #[arg(long)]
    pub withdrawn: bool,
    /// At most this many (0 = the daemon's default of 1000).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub limit: u32,
}

/// The `ListRequest` for these arguments at `now_ms`.
pub fn request(a: &ListArgs, now_ms: i64) -> pb::ListRequest {
    pb::ListRequest {
        origin: a.origin.clone().unwrap_or_default(),
        tlp: a.tlp.map_or(pb::Tlp::Unspecified as i32, |t| {
            wire::tlp_to_proto(t) as i32
        }),
        since_ms: a.since.map_or(0, |s| s.resolve(now_ms).max(0)),
        text: a.text.clone().unwrap_or_default(),
        include_withdrawn: a.withdrawn,
        limit: a.limit,
        ..Default::default()
    }
}

/// Runs `tanoa list`.
pub async fn run(a: ListArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let mut client = connect::connect(g).await?;
    let r = client
        .list(request(&a, tanoa_daemon::now_ms()))
        .await?
        .into_inner();
    if g.json {
        output::print_json(&output::list_json(&r));
    } else {
        outln!("{}", output::list_text(&r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_map_to_the_request() {
        let a = ListArgs {
            origin: Some("ws-cert".into()),
            tlp: Some(Tlp::AmberStrict),
            since: Some(Since::Ago(86_400_000)),
            text: Some("apt40".into()),
            withdrawn: true,
            limit: 7,
        };
        let r = request(&a, 1_767_225_600_000);
        assert_eq!(r.origin, "ws-cert");
        assert_eq!(r.tlp, pb::Tlp::AmberStrict as i32);
        assert_eq!(r.since_ms, 1_767_225_600_000 - 86_400_000);
        assert_eq!(r.text, "apt40");
        assert!(r.include_withdrawn);
        assert_eq!(r.limit, 7);
        let r = request(&ListArgs::default(), 1);
        assert_eq!((r.tlp, r.since_ms, r.limit), (0, 0, 0));
    }
}
