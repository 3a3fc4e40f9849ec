//! `tanoa export --format misp [IDS...] -o DIR`: a MISP feed directory.
//!
//! Writes one `<event uuid>.json` per advisory (`{"Event": {...}}`), `manifest.json` and
//! `hashes.csv`, in the format of PyMISP's feed generator, which MISP reads when the directory
//! (or a web server serving it) is added as a feed of type "MISP Feed". The conversion is
//! `tanoa_daemon::interop::misp::Feed`: an advisory imported from MISP is exported from the
//! event it kept; the others become new events. Withdrawn advisories are left out unless
//! `--include-withdrawn` (then their attributes are marked deleted).
//!
//! Owns: choosing the advisories (the IDs given, or every one held; `--origin` and `--max-tlp`
//! filter), fetching them, writing the files (each through a temporary file and a rename).
//! Must never: change a value of an imported event, or delete files it did not write.

use std::path::Path;

use serde_json::{Value, json};
use tanoa_daemon::interop::misp::Feed;
use tanoa_daemon::model::wire;

use crate::args::GlobalArgs;
use crate::cmd::export::ExportArgs;
use crate::connect;
use crate::exit::Failure;
use crate::output;

/// Runs `tanoa export --format misp`.
pub async fn run(a: &ExportArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let Some(dir) = a.output.as_deref() else {
        return Err(
            Failure::usage("--format misp writes a feed directory; name it with -o DIR")
                .hint("tanoa export --format misp -o ./misp-feed")
                .into(),
        );
    };
    if a.min_confidence != 0 || !a.kinds.is_empty() || a.include_warninglisted {
        return Err(Failure::usage(
            "--min-confidence, --kind and --include-warninglisted apply to blocklists; a MISP \
             feed carries whole advisories",
        )
        .into());
    }
    let mut client = connect::connect(g).await?;
    let mut feed = Feed::new();
    let hint = "add --include-withdrawn to export it (its attributes are marked deleted)";
    // Each advisory is added to the feed as it arrives.
    crate::cmd::export::for_each_selected(&mut client, a, g, hint, &mut |get| {
        let Some(adv) = get.advisory else {
            return Err(Failure::failed(format!(
                "the daemon returned no advisory for {}",
                get.item_id
            ))
            .into());
        };
        let domain = wire::advisory_from_proto(adv.clone()).map_err(|e| {
            Failure::failed(format!(
                "{}/{}: the advisory cannot be read: {e}",
                adv.origin, adv.id
            ))
        })?;
        feed.add(&domain).map_err(|e| {
            Failure::failed(format!(
                "{}/{}: cannot be exported to MISP: {e}",
                adv.origin, adv.id
            ))
        })?;
        Ok(())
    })
    .await?;
    write_feed(&feed, dir, a.force)?;
    print_result(&feed, dir, g.json);
    Ok(())
}

/// Writes every file of the feed into `dir` (created if needed; a symlink there is refused),
/// each with `outfile::write` so MISP never reads half a file. Without `force`, nothing is
/// written when any of the feed's files exists already.
fn write_feed(feed: &Feed, dir: &Path, force: bool) -> Result<(), Failure> {
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Failure::failed(format!(
            "{} is a symlink; refusing to write a feed through it",
            dir.display()
        ))
        .hint("give the real directory with -o"));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.display())))?;
    let files = feed.files();
    let paths: Vec<_> = files.iter().map(|(name, _)| dir.join(name)).collect();
    crate::outfile::check_new(&paths, force)?;
    for ((_, bytes), path) in files.iter().zip(&paths) {
        crate::outfile::write(path, bytes, force)?;
    }
    Ok(())
}

fn print_result(feed: &Feed, dir: &Path, json: bool) {
    let events: Vec<Value> = feed
        .events()
        .map(|e| {
            json!({
                "uuid": e.uuid,
                "file": e.file_name(),
                "advisory": e.advisory,
                "from_misp": e.from_misp,
                "withdrawn": e.withdrawn,
                "attributes": e.attributes().len(),
            })
        })
        .collect();
    let attributes: usize = feed.events().map(|e| e.attributes().len()).sum();
    let hashes = feed.hashes_csv().lines().count();
    let duplicates: Vec<Value> = feed
        .duplicates
        .iter()
        .map(|d| json!({"uuid": d.uuid, "kept": d.kept, "dropped": d.dropped}))
        .collect();
    if json {
        output::print_json(&json!({
            "format": "misp",
            "dir": dir,
            "events": events,
            "attributes": attributes,
            "hashes": hashes,
            "duplicates": duplicates,
        }));
        return;
    }
    outln!(
        "Wrote a MISP feed of {} events ({attributes} attributes) to {}: manifest.json, hashes.csv ({hashes} lines) and one <uuid>.json per event.",
        feed.len(),
        dir.display()
    );
    for d in &feed.duplicates {
        outln!(
            "  {} and {} are the same MISP event {}: kept {}",
            d.kept,
            d.dropped,
            d.uuid,
            d.kept
        );
    }
    outln!(
        "Add it in MISP under Sync Actions > Feeds > Add Feed (source format \"MISP Feed\", URL = this directory or a web server serving it)."
    );
}
