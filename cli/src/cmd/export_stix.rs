//! `tanoa export --format stix [IDS...] [-o FILE]`: advisories as one STIX 2.1 bundle.
//!
//! For each advisory (the IDs given, or every one held, newest first) the signed envelope is
//! fetched with Get, its payload decoded (the exact bytes the origin signed), and turned into
//! STIX objects by `tanoa_daemon::interop::stix::advisory_objects`: the origin identity, a
//! report carrying the origin's signature (a documented extension), indicators, the TLP 2.0
//! marking definition, and every object an import kept, unchanged. `bundle` de-duplicates
//! identical versions. Withdrawn advisories are left out unless `--include-withdrawn` (then
//! they are exported with `revoked: true`).
//!
//! Owns: choosing and fetching the advisories, writing the bundle (stdout, or a file written
//! through a temporary file and a rename).
//! Must never: alter a kept object, or export an advisory the daemon did not return.

use std::io::{IsTerminal as _, Write as _};

use anyhow::Context as _;
use serde_json::{Value, json};
use tanoa_daemon::envelope::Envelope;
use tanoa_daemon::interop::stix;
use tanoa_daemon::model::wire;
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::cmd::export::ExportArgs;
use crate::cmd::show;
use crate::connect;
use crate::exit::Failure;
use crate::output;

/// At most this many advisories are read when no ID is given (the List RPC's ceiling).
const LIST_LIMIT: u32 = 100_000;

/// Runs `tanoa export --format stix`.
pub async fn run(a: &ExportArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    if a.min_confidence != 0 || !a.kinds.is_empty() || a.include_warninglisted {
        return Err(Failure::usage(
            "--min-confidence, --kind and --include-warninglisted apply to blocklists; a STIX \
             bundle carries whole advisories",
        )
        .into());
    }
    let mut client = connect::connect(g).await?;
    let items = fetch(&mut client, a, g).await?;
    let mut objects: Vec<Value> = Vec::new();
    let mut advisories = Vec::with_capacity(items.len());
    for (get, env) in &items {
        let adv = wire::decode_payload(&env.payload).map_err(|e| {
            Failure::failed(format!(
                "item {}: the signed payload cannot be decoded: {e}",
                get.item_id
            ))
        })?;
        let objs = stix::advisory_objects(&adv, env);
        advisories.push(json!({
            "origin": adv.origin,
            "id": adv.id,
            "revision": adv.revision,
            "item_id": get.item_id,
            "withdrawn": adv.withdrawn,
            "objects": objs.len(),
        }));
        objects.extend(objs);
    }
    let bundle = stix::bundle(objects);
    let count = bundle["objects"].as_array().map_or(0, Vec::len);
    let mut text = serde_json::to_vec(&bundle)
        .map_err(|e| Failure::failed(format!("cannot serialize the bundle: {e}")))?;
    text.push(b'\n');
    match &a.output {
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(&text).and_then(|()| out.flush())
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(Failure::failed(format!("cannot write the bundle: {e}")).into());
            }
        }
        Some(path) => {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &text)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
            if g.json {
                output::print_json(&json!({
                    "written": path,
                    "format": "stix",
                    "bundle_id": bundle["id"],
                    "objects": count,
                    "bytes": text.len(),
                    "advisories": advisories,
                }));
            } else {
                outln!(
                    "Wrote a STIX 2.1 bundle of {} advisor{} ({count} objects, {} bytes) to {}.",
                    advisories.len(),
                    if advisories.len() == 1 { "y" } else { "ies" },
                    text.len(),
                    path.display()
                );
            }
        }
    }
    Ok(())
}

/// The advisories to export: (Get response, its envelope).
async fn fetch(
    client: &mut connect::Client,
    a: &ExportArgs,
    g: &GlobalArgs,
) -> anyhow::Result<Vec<(pb::GetResponse, Envelope)>> {
    let wanted_tlp = |tlp: i32| match (a.max_tlp, wire::tlp_from_proto(tlp)) {
        (Some(max), Some(t)) => t <= max,
        (Some(_), None) => false,
        (None, _) => true,
    };
    let wanted_origin = |o: &str| a.origins.is_empty() || a.origins.iter().any(|x| x == o);
    let envelope_of = |r: &pb::GetResponse| {
        r.envelope.clone().map(Envelope::from_proto).ok_or_else(|| {
            Failure::failed(format!("the daemon returned no envelope for {}", r.item_id))
        })
    };
    let mut out = Vec::new();
    if !a.ids.is_empty() {
        for id in &a.ids {
            let r = show::get(client, id).await?;
            let (tlp, origin, withdrawn) = r
                .advisory
                .as_ref()
                .map(|adv| (adv.tlp, adv.origin.clone(), adv.withdrawn))
                .unwrap_or_default();
            if withdrawn && !a.include_withdrawn {
                return Err(Failure::usage(format!("{id} is withdrawn"))
                    .hint("add --include-withdrawn to export it (as revoked STIX objects)")
                    .into());
            }
            if wanted_tlp(tlp) && wanted_origin(&origin) {
                let env = envelope_of(&r)?;
                out.push((r, env));
            }
        }
        return Ok(out);
    }
    let list = client
        .list(pb::ListRequest {
            include_withdrawn: a.include_withdrawn,
            limit: LIST_LIMIT,
            ..Default::default()
        })
        .await
        .context("export: list")?
        .into_inner();
    if list.truncated {
        return Err(Failure::failed(format!(
            "more than {LIST_LIMIT} advisories are held; export them in parts by naming IDs"
        ))
        .into());
    }
    let chosen: Vec<&pb::AdvisorySummary> = list
        .advisories
        .iter()
        .filter(|s| wanted_tlp(s.tlp) && wanted_origin(&s.origin))
        .collect();
    let bar = progress(chosen.len(), g.json);
    for s in chosen {
        let r = show::get(client, &s.item_id).await?;
        let env = envelope_of(&r)?;
        out.push((r, env));
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(out)
}

/// A progress bar on stderr when it is a terminal and the output is for people.
fn progress(len: usize, json: bool) -> Option<indicatif::ProgressBar> {
    if json || !std::io::stderr().is_terminal() || len < 2 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(u64::try_from(len).unwrap_or(u64::MAX));
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} advisories {per_sec} {eta}")
    {
        bar.set_style(style);
    }
    Some(bar)
}
