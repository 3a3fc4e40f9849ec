//! `tanoa export --format csv|text|suricata|zeek`: blocklists of the active indicators.
//!
//! Owns: the blocklist request (TLP ceiling, default GREEN; minimum confidence; kinds; origins;
//! warning-listed values left out unless `--include-warninglisted`), reading the daemon's
//! `ExportIndicators` stream chunk by chunk (a spinner on a terminal, quiet with `--json` or
//! when stderr is not a TTY), merging values held by several advisories, and writing the file
//! (atomically: a temporary file renamed over the target).
//! Must never: select indicators itself (the daemon applies the filter and its warning lists)
//! or write a value a format cannot carry safely (`tanoa_daemon::interop::blocklist` refuses it).

use std::io::IsTerminal as _;
use std::io::Write as _;

use anyhow::Context as _;
use serde_json::json;
use tanoa_daemon::interop::blocklist::{self, Entry, Row};
use tanoa_daemon::model::{Tlp, wire};
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::cmd::export::{ExportArgs, ExportFormat};
use crate::connect;
use crate::exit::Failure;
use crate::output;

/// The request for these arguments (after `check_args`).
pub fn request(a: &ExportArgs) -> pb::ExportIndicatorsRequest {
    pb::ExportIndicatorsRequest {
        max_tlp: wire::tlp_to_proto(
            a.max_tlp
                .unwrap_or(tanoa_daemon::policy::DEFAULT_EXPORT_CEILING),
        ) as i32,
        min_confidence: a.min_confidence,
        kinds: a
            .kinds
            .iter()
            .map(|k| wire::kind_to_proto(*k) as i32)
            .collect(),
        origins: a.origins.clone(),
        include_warninglisted: a.include_warninglisted,
    }
}

/// Refuses arguments that do not apply to blocklists.
pub fn check_args(a: &ExportArgs) -> Result<(), Failure> {
    if !a.ids.is_empty() {
        return Err(Failure::usage(format!(
            "blocklists hold every active indicator the filters select; advisory ids ({}) do \
             not apply",
            a.ids.join(", ")
        ))
        .hint("filter with --origin, --kind, --max-tlp and --min-confidence"));
    }
    if a.include_withdrawn {
        return Err(Failure::usage(
            "--include-withdrawn does not apply to blocklists: they hold active indicators only",
        ));
    }
    if a.min_confidence > 100 {
        return Err(Failure::usage(format!(
            "--min-confidence {} is above 100",
            a.min_confidence
        )));
    }
    Ok(())
}

/// An exported indicator as a blocklist row; `None` for what the daemon should never send
/// (no indicator, unknown kind).
pub fn row(x: pb::ExportedIndicator) -> Option<Row> {
    let ind = x.indicator?;
    let adv = x.advisory.unwrap_or_default();
    Some(Row {
        kind: wire::kind_from_proto(ind.kind)?,
        value: ind.value,
        origin: adv.origin,
        advisory_id: adv.advisory_id,
        tlp: wire::tlp_from_proto(adv.tlp).unwrap_or(Tlp::Red),
        confidence: u8::try_from(ind.confidence.min(100)).unwrap_or(100),
        valid_until_ms: (ind.valid_until_ms != 0).then_some(ind.valid_until_ms),
        warning_lists: x.warning_lists,
    })
}

/// The comment lines heading Suricata and Zeek files.
pub fn header(a: &ExportArgs, member: &str, now_ms: i64) -> Vec<String> {
    let kinds = if a.kinds.is_empty() {
        "all".to_string()
    } else {
        a.kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    let origins = if a.origins.is_empty() {
        "all".to_string()
    } else {
        a.origins.join(",")
    };
    vec![
        format!(
            "Tanoa blocklist exported from {member} at {}",
            output::rfc3339(now_ms.div_euclid(1000) * 1000)
        ),
        format!(
            "filter: TLP up to {}, confidence >= {}, kinds {kinds}, origins {origins}, \
             warning-listed values {}",
            a.max_tlp
                .unwrap_or(tanoa_daemon::policy::DEFAULT_EXPORT_CEILING),
            a.min_confidence,
            if a.include_warninglisted {
                "included (marked)"
            } else {
                "excluded"
            }
        ),
    ]
}

/// Writes the entries in the chosen format.
pub fn render(
    format: ExportFormat,
    entries: &[Entry],
    header: &[String],
) -> Result<String, Failure> {
    let out = match format {
        ExportFormat::Csv => Ok(blocklist::to_csv(entries)),
        ExportFormat::Text => blocklist::to_text(entries),
        ExportFormat::Suricata => blocklist::to_suricata(entries, header),
        ExportFormat::Zeek => blocklist::to_zeek(entries, header),
        other => {
            return Err(Failure::usage(format!(
                "{other:?} is not a blocklist format"
            )));
        }
    };
    out.map_err(|e| Failure::failed(format!("cannot write the blocklist: {e}")))
}

fn spinner(json: bool) -> Option<indicatif::ProgressBar> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {pos} indicators {per_sec}")
    {
        bar.set_style(style);
    }
    Some(bar)
}

/// Runs a blocklist export.
pub async fn run(a: &ExportArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    check_args(a)?;
    let mut client = connect::connect(g).await?;
    let member = client
        .status(pb::StatusRequest {})
        .await
        .context("export: status")?
        .into_inner()
        .member_id;
    let mut stream = client
        .export_indicators(request(a))
        .await
        .context("export indicators")?
        .into_inner();
    let bar = spinner(g.json);
    let mut rows = Vec::new();
    let mut advisories = std::collections::HashSet::new();
    while let Some(chunk) = stream.message().await.context("export indicators")? {
        if let Some(b) = &bar {
            b.inc(u64::try_from(chunk.indicators.len()).unwrap_or(0));
        }
        for x in chunk.indicators {
            if let Some(r) = row(x) {
                advisories.insert((r.origin.clone(), r.advisory_id.clone()));
                rows.push(r);
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let indicators = rows.len();
    let entries = blocklist::merge(rows);
    let warned = entries
        .iter()
        .filter(|e| !e.warning_lists.is_empty())
        .count();
    let text = render(
        a.format,
        &entries,
        &header(a, &member, tanoa_daemon::now_ms()),
    )?;
    match &a.output {
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(Failure::failed(format!("cannot write to stdout: {e}")).into());
            }
            if warned > 0 && a.format == ExportFormat::Text && !g.json {
                eprintln!(
                    "note: {warned} warning-listed value(s) included; a text blocklist cannot \
                     mark them (--format csv shows their lists)"
                );
            }
        }
        Some(path) => {
            crate::outfile::write(path, text.as_bytes(), a.force)?;
            if g.json {
                output::print_json(&json!({
                    "written": path,
                    "format": format!("{:?}", a.format).to_ascii_lowercase(),
                    "values": entries.len(),
                    "indicators": indicators,
                    "advisories": advisories.len(),
                    "warninglisted_values": warned,
                }));
            } else {
                outln!(
                    "Wrote {} value(s) ({} indicator(s) of {} advisory(ies)) to {}{}.",
                    entries.len(),
                    indicators,
                    advisories.len(),
                    path.display(),
                    if warned > 0 {
                        format!(", {warned} of them on a warning list (marked)")
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tanoa_daemon::model::IndicatorKind;

    fn args() -> ExportArgs {
        ExportArgs {
            ids: Vec::new(),
            format: ExportFormat::Csv,
            output: None,
            max_tlp: None,
            min_confidence: 0,
            kinds: Vec::new(),
            origins: Vec::new(),
            include_warninglisted: false,
            force: false,
            include_withdrawn: false,
            page_size: 1000,
        }
    }

    #[test]
    fn the_default_request_is_green_without_warninglisted_values() {
        let r = request(&args());
        assert_eq!(r.max_tlp, pb::Tlp::Green as i32);
        assert!(!r.include_warninglisted);
        let mut a = args();
        a.max_tlp = Some(Tlp::Red);
        a.kinds = vec![IndicatorKind::Domain];
        a.origins = vec!["fj-cert".into()];
        let r = request(&a);
        assert_eq!(r.max_tlp, pb::Tlp::Red as i32);
        assert_eq!(r.kinds, [pb::IndicatorKind::Domain as i32]);
        assert_eq!(r.origins, ["fj-cert"]);
    }

    #[test]
    fn arguments_that_do_not_apply_are_refused() {
        let mut a = args();
        a.ids = vec!["ws-1".into()];
        assert_eq!(check_args(&a).unwrap_err().code, crate::exit::USAGE);
        let mut a = args();
        a.include_withdrawn = true;
        assert_eq!(check_args(&a).unwrap_err().code, crate::exit::USAGE);
        let mut a = args();
        a.min_confidence = 101;
        assert_eq!(check_args(&a).unwrap_err().code, crate::exit::USAGE);
        assert!(check_args(&args()).is_ok());
    }

    #[test]
    fn rows_carry_the_advisory_and_expiry() {
        let r = row(pb::ExportedIndicator {
            indicator: Some(pb::Indicator {
                kind: pb::IndicatorKind::Ipv4 as i32,
                value: "192.0.2.1".into(),
                confidence: 70,
                valid_until_ms: 0,
                note: String::new(),
            }),
            advisory: Some(pb::AdvisorySummary {
                origin: "ws-cert".into(),
                advisory_id: "ws-1".into(),
                tlp: pb::Tlp::Clear as i32,
                ..Default::default()
            }),
            warning_lists: vec!["rfc5735".into()],
        })
        .unwrap();
        assert_eq!(
            (r.kind, r.tlp, r.confidence, r.valid_until_ms),
            (IndicatorKind::Ipv4, Tlp::Clear, 70, None)
        );
        assert_eq!(r.warning_lists, ["rfc5735"]);
        assert!(row(pb::ExportedIndicator::default()).is_none());
    }

    #[test]
    fn headers_state_the_filter() {
        let mut a = args();
        a.include_warninglisted = true;
        let h = header(&a, "ws-cert", 1_767_225_600_123);
        assert_eq!(
            h[0],
            "Tanoa blocklist exported from ws-cert at 2026-01-01T00:00:00Z"
        );
        assert_eq!(
            h[1],
            "filter: TLP up to GREEN, confidence >= 0, kinds all, origins all, warning-listed \
             values included (marked)"
        );
    }
}
