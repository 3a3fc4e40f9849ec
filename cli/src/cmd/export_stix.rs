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

use std::io::Write as _;

use serde_json::{Value, json};
use tanoa_daemon::envelope::Envelope;
use tanoa_daemon::interop::stix;
use tanoa_daemon::model::wire;

use crate::args::GlobalArgs;
use crate::cmd::export::ExportArgs;
use crate::connect;
use crate::exit::Failure;
use crate::output;

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
    let mut objects: Vec<Value> = Vec::new();
    let mut advisories = Vec::new();
    let hint = "add --include-withdrawn to export it (as revoked STIX objects)";
    // Each advisory is converted as it arrives; only its STIX objects are kept.
    crate::cmd::export::for_each_selected(&mut client, a, g, hint, &mut |get| {
        let env = get
            .envelope
            .clone()
            .map(Envelope::from_proto)
            .ok_or_else(|| {
                Failure::failed(format!(
                    "the daemon returned no envelope for {}",
                    get.item_id
                ))
            })?;
        let adv = wire::decode_payload(&env.payload).map_err(|e| {
            Failure::failed(format!(
                "item {}: the signed payload cannot be decoded: {e}",
                get.item_id
            ))
        })?;
        let objs = stix::advisory_objects(&adv, &env);
        advisories.push(json!({
            "origin": adv.origin,
            "id": adv.id,
            "revision": adv.revision,
            "item_id": get.item_id,
            "withdrawn": adv.withdrawn,
            "objects": objs.len(),
        }));
        objects.extend(objs);
        Ok(())
    })
    .await?;
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
            crate::outfile::write(path, &text, a.force)?;
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
