//! The operator socket of a real daemon is created with mode 0600 (and the data directory is
//! private); it is removed on a clean shutdown.

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};

use tanoa_integration_tests::TestNode;

use crate::bins;

#[tokio::test]
async fn operator_socket_is_0600_and_removed_on_shutdown() {
    let mut node = TestNode::start_new(&bins().tanoad, "ws-cert", "").await;
    let meta = std::fs::symlink_metadata(node.socket_path()).unwrap();
    assert!(meta.file_type().is_socket(), "{:?}", meta.file_type());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "socket mode {:o}",
        meta.permissions().mode() & 0o777
    );
    let data = std::fs::metadata(node.dir().join("data")).unwrap();
    assert_eq!(
        data.permissions().mode() & 0o077,
        0,
        "data dir {:o}",
        data.permissions().mode()
    );
    // It answers.
    let mut c = node.client().await;
    let st = c
        .status(tanoa_proto::v1::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.member_id, "ws-cert");
    drop(c);
    node.stop().await;
    assert!(
        !node.socket_path().exists(),
        "socket left behind after a clean shutdown"
    );

    // A stale socket (left by a killed daemon) is replaced, again with mode 0600.
    node.start().await;
    node.kill9();
    assert!(
        node.socket_path().exists(),
        "SIGKILL cannot remove the socket"
    );
    node.start().await;
    let mode = std::fs::metadata(node.socket_path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "replaced socket mode {mode:o}");
    node.stop().await;
}

/// SIGTERM right after the socket first answers must still shut down cleanly (exit 0, store
/// synced, socket removed). Regression test: tanoad once registered its SIGTERM handler only
/// when `run` first polled the shutdown future, after the servers already answered, so a
/// SIGTERM in between killed it with the default action (no store sync, stale socket).
#[tokio::test]
async fn sigterm_as_soon_as_the_socket_answers_is_a_clean_shutdown() {
    let mut node = TestNode::create(&bins().tanoad, "ws-cert", "");
    for round in 0..20 {
        node.start_answering().await;
        node.stop().await;
        assert!(
            !node.socket_path().exists(),
            "round {round}: socket left behind"
        );
    }
}
