//! The store conformance suite run against `SledStore` in a temporary directory, and the checks
//! only a durable backend has (reopen, blob files, group commit, format marker).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tanoa_core::envelope::Verified;
use tanoa_core::model::{Advisory, IndicatorKind, Tlp};
use tanoa_core::store::conformance::*;
use tanoa_core::store::{IndicatorQuery, Store, StoreError};

use super::{SledConfig, SledStore};

fn open() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
    (dir, store)
}

tanoa_core::store_conformance_suite!(open);

/// The advisories the durable checks look at (here and in `sled_store`'s layout tests).
pub(super) const REFERENCE_ADVS: [(&str, &str); 3] = [
    (WS, "ws-2026-0001"),
    (WS, "ws-2026-0002"),
    (TO, "to-2026-0001"),
];

/// The searches those checks compare: two addresses, a domain and a CIDR.
pub(super) fn reference_queries() -> [IndicatorQuery; 4] {
    [
        ip("198.51.100.1"),
        ip("2001:db8::1"),
        exact(IndicatorKind::Domain, "c2.apt40.example"),
        exact(IndicatorKind::Cidr, "198.51.100.0/24"),
    ]
}

/// Beside `ws_item("ws-2026-0001", 1)`: an equivocating revision 1 of it (another title),
/// ws-2026-0002 withdrawn, to-2026-0001 AMBER at revision 2.
pub(super) fn reference_items() -> [Verified<Advisory>; 3] {
    let mut v = advisory(WS, "ws-2026-0001", 1);
    v.title = "APT40 equivocating".to_string();
    [
        signed(v),
        signed(withdrawn(advisory(WS, "ws-2026-0002", 1))),
        signed(amber(advisory(TO, "to-2026-0001", 2))),
    ]
}

fn open_sled(dir: &std::path::Path) -> SledStore {
    SledStore::open(dir, &SledConfig::default()).unwrap()
}

#[test]
fn sled_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = ws_item("ws-2026-0001", 1);
    let [v, w, t] = reference_items();
    let advs = REFERENCE_ADVS;
    let queries = reference_queries();
    let before = {
        let store = open_sled(dir.path());
        for i in [&r1, &v, &w, &t] {
            put(&store, i);
        }
        store
            .append_audit(&audit_entry(1, Some(r1.item_id())))
            .unwrap();
        store.append_audit(&audit_entry(2, None)).unwrap();
        store.sync().unwrap();
        assert!(store.disk_bytes() > 0);
        snapshot(&store, &advs, &queries)
    };
    assert_eq!(before.counts, counts(3, 1, 4, 12, 1));
    assert_eq!(before.searches[0].len(), 2, "both active /24 indicators");

    let store = open_sled(dir.path());
    assert_eq!(snapshot(&store, &advs, &queries), before);
    let got = store.get(&t.item_id()).unwrap().unwrap();
    assert_eq!(&got.envelope, t.envelope());
    assert_eq!(got.advisory.tlp, Tlp::Amber);
    // The audit sequence continues after the reopen.
    store.append_audit(&audit_entry(3, None)).unwrap();
    let log = store.audit(10).unwrap();
    assert_eq!(
        log.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>(),
        vec!["entry 3", "entry 2", "entry 1"]
    );
    // Writes continue from the persisted counters.
    put(&store, &ws_item("ws-2026-0001", 2));
    assert_eq!(store.counts().unwrap(), counts(3, 1, 5, 12, 1));
    store.sync().unwrap();
}

#[test]
fn sled_large_values_survive_reopen_as_blob_files_and_large_envelopes_as_spilled_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = advisory(WS, "ws-2026-0001", 1);
    // 200 KiB of JSON: an envelope record over 64 KiB is kept as a file beside sled (`spill`).
    a.extras = format!("{{\"x_note\":\"{}\"}}", "a".repeat(200 * 1024)).into_bytes();
    let item = signed(a);
    // Any other value over ~128 KiB is one sled writes as a separate blob file, which `sync`
    // fsyncs (sled 0.34 does not).
    let big_value = vec![7u8; 200 * 1024];
    {
        let store = open_sled(dir.path());
        put(&store, &item);
        store.raw_insert("meta", b"x-test-big", &big_value);
        store.sync().unwrap();
        let spilled = std::fs::read_dir(dir.path().join("envelopes"))
            .unwrap()
            .count();
        assert_eq!(spilled, 1, "expected the envelope record as one file");
        let blobs = std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
        assert!(blobs > 0, "expected a blob file for a 200 KiB sled value");
    }
    let store = open_sled(dir.path());
    let got = store.get(&item.item_id()).unwrap().unwrap();
    assert_eq!(&got.envelope, item.envelope());
    assert_eq!(store.raw_get("meta", b"x-test-big"), Some(big_value));
}

#[test]
fn sled_concurrent_puts_and_syncs_share_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open_sled(dir.path()));
    let items: Vec<Vec<Verified<Advisory>>> = (0..4)
        .map(|t| {
            (0..10)
                .map(|n| ws_item(&format!("ws-2026-{t}{n:03}"), 1))
                .collect()
        })
        .collect();
    std::thread::scope(|s| {
        for batch in &items {
            let store = store.clone();
            s.spawn(move || {
                for item in batch {
                    put(&*store, item);
                    store.sync().unwrap();
                    assert!(store.get(&item.item_id()).unwrap().is_some());
                }
            });
        }
    });
    assert_eq!(store.counts().unwrap(), counts(40, 0, 40, 240, 0));
    assert_eq!(store.item_ids().unwrap().len(), 40);
    // Nothing new: an immediate sync returns without work (and without error).
    store.sync().unwrap();
}

#[test]
fn sled_store_open_fails_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = SledStore::open(&file, &SledConfig::default()).unwrap_err();
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[test]
fn sled_refuses_a_store_of_another_format() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_sled(dir.path());
        store.raw_insert("meta", b"format", b"tanoa-store-v999");
    }
    match SledStore::open(dir.path(), &SledConfig::default()) {
        Err(StoreError::Corrupt { tree, detail }) => {
            assert_eq!(tree, "meta");
            assert!(detail.contains("tanoa-store-v999"), "{detail}");
        }
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn sled_config_default_is_32_mib() {
    assert_eq!(SledConfig::default().cache_capacity_bytes, 32 * 1024 * 1024);
}
