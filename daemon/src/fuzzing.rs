//! Bodies of the daemon's fuzz targets (`fuzz/`), as plain functions so the ordinary test suite
//! replays every corpus and regression file through the code libFuzzer runs
//! (`integration-tests/tests/it/fuzz_corpus.rs`). The core's targets are `tanoa_core::fuzzing`.
//!
//! Owns: feeding untrusted `tanoad.toml` text and TAXII queries to the real parsers.
//! Must never: panic on any input, or write a file.

use std::path::Path;

use crate::config::Config;

pub use crate::taxii::fuzzing::taxii_query;

/// `config_toml`: the bytes (as UTF-8, lossily) are a `tanoad.toml`, parsed and validated as if
/// read from a directory that does not exist (so every referenced file is missing, and says so).
pub fn config_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Config::parse(&text, Path::new("/nonexistent/tanoa-fuzz/tanoad.toml")) {
        Ok(c) => {
            let _ = c.keyring_records();
            let _ = c.own_roster_entry();
            let _ = c.peers().count();
        }
        Err(e) => {
            let _ = e.to_string();
            let _ = e.problems();
        }
    }
}

/// Writes `tanoad.toml` seeds into `$TANOA_FUZZ_SEEDS/config_toml/`
/// (`TANOA_FUZZ_SEEDS=$PWD/fuzz/corpus cargo test -p tanoa-daemon --lib write_seeds -- --ignored`).
#[cfg(test)]
mod seeds {
    #![allow(clippy::unwrap_used)]

    use crate::config::{ExampleMember, FederatedExample};

    use super::*;

    #[test]
    #[ignore = "writes seed files; run by hand"]
    fn write_seeds() {
        let dir = std::path::PathBuf::from(std::env::var("TANOA_FUZZ_SEEDS").unwrap())
            .join("config_toml");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("example.toml"),
            Config::example("cert-to", "CERT Tonga"),
        )
        .unwrap();
        let fed = FederatedExample {
            member_id: "cert-to".into(),
            name: "CERT Tonga".into(),
            key_file: "keys/cert-to.key".into(),
            data_dir: "data".into(),
            operator_socket: None,
            peer_listen: "127.0.0.1:7401".into(),
            tls_cert: "tls/cert-to.pem".into(),
            tls_key: "tls/cert-to.key".into(),
            trust_anchors: vec!["tls/ca.pem".into()],
            metrics_listen: Some("127.0.0.1:9401".into()),
            sync: vec![("interval_ms".into(), "2000".into())],
            members: vec![ExampleMember {
                id: "cert-ws".into(),
                name: "CERT Samoa".into(),
                endpoints: vec!["127.0.0.1:7402".into(), "[::1]:7402".into()],
                public_keys: vec!["11".repeat(32)],
                tls_pins: vec![],
            }],
        };
        std::fs::write(dir.join("federated.toml"), Config::example_federated(&fed)).unwrap();
    }
}
