//! `tanoa search VALUE [--kind K]`: active advisories holding an indicator, exact or (for an IP)
//! inside a CIDR indicator, or listing the value among their CVEs or actors. Without `--kind`
//! the daemon searches every kind the value can be (`update.plist`: domain and file name) and
//! the actor lists, and says which kinds it searched.
//!
//! Owns: the search command line and its output (the kinds searched, the normalized value and
//! how each hit matched).
//! Must never: normalize the value itself (the daemon does, with the same rules as publish).

use anyhow::Context as _;
use clap::Args;
use tanoa_daemon::model::{IndicatorKind, wire};
use tanoa_proto::v1 as pb;

use crate::args::{GlobalArgs, parse_kind};
use crate::connect;
use crate::output;

/// `tanoa search` arguments.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// The value: IP, CIDR, domain, URL, e-mail, hash, CVE, file name or ASN (defanged values
    /// such as evil[.]example are accepted).
    #[arg(value_name = "VALUE")]
    pub value: String,
    /// Kind of the value (default: every kind it can be, and actor names): ipv4, ipv6, cidr,
    /// domain, url, email, md5, sha1, sha256, sha512, cve, filename, asn.
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub kind: Option<IndicatorKind>,
}

/// The request for these arguments.
pub fn request(a: &SearchArgs) -> pb::SearchIndicatorRequest {
    pb::SearchIndicatorRequest {
        value: a.value.clone(),
        kind: a.kind.map_or(pb::IndicatorKind::Unspecified as i32, |k| {
            wire::kind_to_proto(k) as i32
        }),
    }
}

/// Runs `tanoa search`; no hit is still a success (exit 0, empty `hits`).
pub async fn run(a: SearchArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let mut client = connect::connect(g).await?;
    let r = client
        .search_indicator(request(&a))
        .await
        .with_context(|| format!("search {}", a.value))?
        .into_inner();
    if g.json {
        output::print_json(&output::search_json(&a.value, &r));
    } else {
        outln!("{}", output::search_text(&a.value, &r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_is_sent_only_when_given() {
        let a = SearchArgs {
            value: "198.51.100.23".into(),
            kind: None,
        };
        assert_eq!(request(&a).kind, 0);
        let a = SearchArgs {
            value: "198.51.100.23".into(),
            kind: Some(IndicatorKind::Ipv4),
        };
        assert_eq!(request(&a).kind, pb::IndicatorKind::Ipv4 as i32);
    }
}
