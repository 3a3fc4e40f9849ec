//! A config with an unknown key or a bad value is refused by `tanoad check-config` and by
//! `tanoad --config` alike: exit 2, the key named on stderr, nothing started.

use tanoa_integration_tests::{TestNode, run_command};

use crate::bins;

/// Writes `text` as the node's config.
fn write_config(node: &TestNode, text: &str) {
    std::fs::write(node.config_path(), text).unwrap();
}

#[tokio::test]
async fn unknown_key_and_bad_value_exit_2_naming_the_key() {
    let tanoad = bins().tanoad;
    let node = TestNode::create(&tanoad, "ws-cert", "");
    let cfg = node.config_path().to_path_buf();
    let example = std::fs::read_to_string(&cfg).unwrap();
    let anchor = "data_dir = \"data\"\n";
    assert!(
        example.contains(anchor),
        "example config changed: {example}"
    );

    // The example config itself is valid.
    let ok = run_command(&tanoad, ["check-config", "--config", cfg.to_str().unwrap()]).await;
    ok.expect_code(0, "check-config on the example config");
    assert!(ok.stdout.contains("valid"), "{}", ok.stdout);

    let cases = [
        (
            "unknown key",
            example.replace(anchor, &format!("{anchor}cahce_mb = 64\n")),
            "storage.cahce_mb",
        ),
        (
            "bad value",
            example.replace(anchor, &format!("{anchor}cache_mb = \"big\"\n")),
            "storage.cache_mb",
        ),
        (
            "out-of-range value",
            example.replace(anchor, &format!("{anchor}cache_mb = 0\n")),
            "storage.cache_mb",
        ),
        (
            "unknown table",
            format!("{example}\n[peers]\nfj = 1\n"),
            "peers",
        ),
    ];
    for (what, text, key) in cases {
        write_config(&node, &text);
        for args in [
            vec!["check-config", "--config", cfg.to_str().unwrap()],
            vec!["--config", cfg.to_str().unwrap()],
        ] {
            let out = run_command(&tanoad, &args).await;
            out.expect_code(2, &format!("{what}: tanoad {args:?}"));
            assert!(
                out.stderr.contains(key),
                "{what}: tanoad {args:?}: stderr does not name {key}:\n{}",
                out.stderr
            );
            assert!(
                out.stderr.contains("tanoad.toml"),
                "{what}: stderr does not name the file:\n{}",
                out.stderr
            );
            assert!(
                !node.socket_path().exists(),
                "{what}: a socket was created by a refused config"
            );
        }
    }
    // The bad value is located in the file.
    write_config(
        &node,
        &example.replace(anchor, &format!("{anchor}cache_mb = \"big\"\n")),
    );
    let out = run_command(&tanoad, ["--config", cfg.to_str().unwrap()]).await;
    assert!(
        out.stderr.contains("(line "),
        "line number missing: {}",
        out.stderr
    );
}

#[tokio::test]
async fn missing_config_bad_key_file_and_no_arguments_exit_2_with_what_to_do() {
    use std::os::unix::fs::PermissionsExt as _;

    let tanoad = bins().tanoad;
    let out = run_command(&tanoad, Vec::<&str>::new()).await;
    out.expect_code(2, "tanoad without --config");
    assert!(out.stderr.contains("--config"), "{}", out.stderr);
    assert!(out.stderr.contains("tanoa init"), "{}", out.stderr);

    let node = TestNode::create(&tanoad, "ws-cert", "");
    let missing = node.dir().join("nope.toml");
    let out = run_command(&tanoad, ["--config", missing.to_str().unwrap()]).await;
    out.expect_code(2, "missing config file");
    assert!(out.stderr.contains("nope.toml"), "{}", out.stderr);

    // A private key readable by others is refused, with the command that fixes it.
    let key = node.dir().join("keys/ws-cert.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = node.config_path().to_str().unwrap();
    for args in [vec!["check-config", "--config", cfg], vec!["--config", cfg]] {
        let out = run_command(&tanoad, &args).await;
        out.expect_code(2, &format!("world-readable key: tanoad {args:?}"));
        assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
        assert!(out.stderr.contains("ws-cert.key"), "{}", out.stderr);
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A key file of another member is refused, naming both members.
    let text = std::fs::read_to_string(node.config_path()).unwrap();
    std::fs::write(
        node.config_path(),
        text.replace("id = \"ws-cert\"", "id = \"fj-cert\""),
    )
    .unwrap();
    let out = run_command(&tanoad, ["check-config", "--config", cfg]).await;
    out.expect_code(2, "key file of another member");
    assert!(
        out.stderr.contains("ws-cert") && out.stderr.contains("fj-cert"),
        "{}",
        out.stderr
    );
    assert!(!node.socket_path().exists());
}
