//! Replays every fuzz corpus and regression file (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the target's body, deterministically, on stable Rust:
//! a finding of `fuzz/run.sh` that was fixed stays fixed. No daemon is started.

use std::path::{Path, PathBuf};
use std::time::Instant;

type Body = fn(&[u8]);

/// Every target of `fuzz/Cargo.toml`, with its body.
const TARGETS: &[(&str, Body)] = &[
    ("envelope", tanoa_core::fuzzing::envelope),
    ("peer_messages", tanoa_core::fuzzing::peer_messages),
    ("negentropy_frame", tanoa_core::fuzzing::negentropy_frame),
    ("taxii_query", tanoa_daemon::fuzzing::taxii_query),
    ("stix_bundle", tanoa_core::fuzzing::stix_bundle),
    ("stix_pattern", tanoa_core::fuzzing::stix_pattern),
    ("misp_event", tanoa_core::fuzzing::misp_event),
    ("advisory_draft", tanoa_core::fuzzing::advisory_draft),
    ("config_toml", tanoa_daemon::fuzzing::config_toml),
    ("warninglist", tanoa_core::fuzzing::warninglist),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn every_fuzz_corpus_and_regression_replays_without_panic() {
    let start = Instant::now();
    let fuzz = fuzz_dir();
    // Every target directory belongs to a known target (a renamed target loses no corpus).
    for sub in ["corpus", "regressions"] {
        let Ok(dirs) = std::fs::read_dir(fuzz.join(sub)) else {
            assert_eq!(sub, "regressions", "fuzz/{sub} is missing");
            continue;
        };
        for d in dirs {
            let d = d.unwrap();
            if !d.path().is_dir() {
                continue;
            }
            let name = d.file_name().into_string().unwrap();
            assert!(
                TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz/{sub}/{name} is not a fuzz target"
            );
        }
    }
    let mut total = 0;
    for (target, body) in TARGETS {
        let seeds = files(&fuzz.join("corpus").join(target));
        assert!(!seeds.is_empty(), "fuzz/corpus/{target} has no seed");
        for f in seeds
            .iter()
            .chain(&files(&fuzz.join("regressions").join(target)))
        {
            let bytes = std::fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| body(&bytes));
            assert!(r.is_ok(), "{target} panicked on {}", f.display());
            total += 1;
        }
    }
    eprintln!("replayed {total} fuzz inputs in {:.1?}", start.elapsed());
}
