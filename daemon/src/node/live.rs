//! Applying changes to a running node: a new membership (the one entry point, reached through
//! `NodeCore::apply_membership` by the roster rules, SIGHUP and `Reload`) and a config reload.
//!
//! Owns: `Live`, which applies a `Membership` everywhere the member list is used — the keyring
//! envelopes are verified with, the peer port's TLS trust (pins and trust anchors, server and
//! client side, then closing connections it no longer admits), the sync core's peers and the
//! driver's links (new members dialled, removed ones dropped, changed endpoints or pins
//! re-dialled), the reserved capacity of the peer port's accept loop, the snapshot the operator
//! API shows — with a log line and a metric for each change; and `reload`, which re-reads
//! `tanoad.toml` and the TLS files, applies what can change live (`[[members]]`, `[[trusted]]`,
//! `[limits]` but `max_payload_bytes`, `peer.tls_cert`/`tls_key`/`trust_anchors`, the signing
//! key of `member.key_file`) and reports every other changed setting as needing a restart
//! (WARN naming the key, `tanoa status`).
//!
//! Rules written down: a config that does not load is refused whole (its problems logged with
//! file and key) and nothing changes; TLS files are read before anything is applied, so a bad
//! certificate also refuses the reload; `[[members]]` from the file is applied only while the
//! membership in force is the local one (version 0): once a signed roster is in force, the
//! roster decides and a changed `[[members]]` is reported, not applied. The key of
//! `member.key_file` is re-read on every reload (same checks as at start: a file group or
//! others can read is refused) and, when it differs from the one signing, becomes the signing
//! identity only if it belongs to this member and may sign now in the roster in force (with
//! `[roster]`) or in the reloaded `[[members]]`/`[[trusted]]` (version 0); otherwise the old
//! key keeps signing and the problem is logged and reported like a setting needing a restart
//! (`member.key_file not applied: …`), never refusing the rest of the reload.
//! Must never: apply half a reload, hold a copy of the member list that outlives an apply, or
//! ignore a changed setting silently.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use crate::config::Config;
use crate::envelope::PublicKeyRecord;
use crate::membership::{Membership, MembershipDiff, SpkiPin};
use crate::metrics::Metrics;
use crate::publish::{ApplyMembership, NodeCore, ReloadReport};
use crate::tcp_accept::ReservedAddrs;
use crate::transport::{self, PeerTls, PeerTrustUpdate};

/// What is applied live and what a reload compares with.
struct LiveState {
    /// The config the node started with (settings that need a restart are compared with it).
    started: Config,
    /// `[[trusted]]` in force.
    trusted: Vec<PublicKeyRecord>,
    /// Trust anchors in force (DER).
    anchors: Vec<CertificateDer<'static>>,
}

/// Applies memberships and reloads to a running node (see the module doc).
pub(crate) struct Live {
    /// Weak: `NodeCore` holds this `Live` (to reach it from below the wiring); a strong
    /// reference back would keep the core, and so the store, alive after shutdown.
    core: std::sync::Weak<NodeCore>,
    tls: Option<PeerTls>,
    reserved: std::sync::Mutex<Option<ReservedAddrs>>,
    metrics: Arc<Metrics>,
    state: tokio::sync::Mutex<LiveState>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

/// The pins of every member, for the peer port's trust.
fn pins_of(m: &Membership) -> BTreeMap<String, Vec<SpkiPin>> {
    m.members
        .iter()
        .map(|(id, mm)| (id.clone(), mm.tls_pins.clone()))
        .collect()
}

/// Settings whose new value differs from the running one and that only a restart applies.
pub(crate) fn restart_keys(running: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |key: &str, differs: bool| {
        if differs {
            out.push(key.to_string());
        }
    };
    check("member.id", running.member.id != new.member.id);
    check("member.name", running.member.name != new.member.name);
    check(
        "storage.data_dir",
        running.storage.data_dir != new.storage.data_dir,
    );
    check(
        "storage.cache_mb",
        format!("{:?}", running.storage) != format!("{:?}", new.storage)
            && running.storage.data_dir == new.storage.data_dir,
    );
    check(
        "operator.socket",
        running.operator.socket != new.operator.socket,
    );
    check(
        "operator.tcp_listen",
        format!("{:?}", running.operator.tcp) != format!("{:?}", new.operator.tcp),
    );
    check(
        "log",
        format!("{:?}", running.log) != format!("{:?}", new.log),
    );
    check(
        "limits.max_payload_bytes",
        running.limits.max_payload_bytes != new.limits.max_payload_bytes,
    );
    match (&running.peer, &new.peer) {
        (Some(a), Some(b)) => check("peer.listen", a.listen != b.listen),
        (None, None) => {}
        _ => check("peer", true),
    }
    check(
        "sync",
        format!("{:?}", running.sync) != format!("{:?}", new.sync),
    );
    check(
        "metrics.listen",
        format!("{:?}", running.metrics) != format!("{:?}", new.metrics),
    );
    check(
        "taxii",
        format!("{:?}", running.taxii) != format!("{:?}", new.taxii),
    );
    check(
        "warninglists",
        format!("{:?}", running.warninglists) != format!("{:?}", new.warninglists),
    );
    out
}

impl Live {
    /// The applier of a node started with `config` (its membership is already in force).
    pub(crate) fn new(
        config: &Config,
        core: Arc<NodeCore>,
        tls: Option<PeerTls>,
        metrics: Arc<Metrics>,
    ) -> Result<Live, transport::TransportError> {
        let anchors = match &config.peer {
            Some(p) => transport::anchors_from_files(&p.trust_anchors)?,
            None => Vec::new(),
        };
        Ok(Live {
            core: Arc::downgrade(&core),
            tls,
            reserved: std::sync::Mutex::new(None),
            metrics,
            state: tokio::sync::Mutex::new(LiveState {
                started: config.clone(),
                trusted: config.trusted.clone(),
                anchors,
            }),
        })
    }

    /// The node's core, while it runs.
    fn core(&self) -> Result<Arc<NodeCore>, String> {
        self.core
            .upgrade()
            .ok_or_else(|| "the node is shutting down".to_string())
    }

    /// Closes the open peer connections the trust in force no longer admits (also run
    /// periodically: a pinned certificate that expired while its connection was open).
    pub(crate) fn recheck_connections(&self) {
        if let Some(tls) = &self.tls {
            for (member, reason) in tls.recheck() {
                tracing::info!(peer = %member, %reason,
                    "closing a connection its authentication no longer admits");
                self.metrics.membership_change("connection_closed", 1);
            }
        }
    }

    /// The reserved addresses of the peer port's accept loop, kept up to date from now on.
    pub(crate) fn set_reserved(&self, reserved: ReservedAddrs) {
        *self
            .reserved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reserved);
    }

    /// Resolves the endpoints of the membership in force into the reserved addresses.
    pub(crate) async fn refresh_reserved(&self) {
        let reserved = self
            .reserved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let (Some(r), Ok(core)) = (reserved, self.core()) {
            let (membership, me) = (core.membership(), core.member().to_string());
            drop(core);
            let fresh = super::membership_addresses(&membership, &me).await;
            *r.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        }
    }

    async fn apply_locked(
        &self,
        st: &LiveState,
        next: Membership,
    ) -> Result<MembershipDiff, String> {
        let core = self.core()?;
        let old = core.membership();
        let diff = old.diff(&next);
        if let Some(tls) = &self.tls {
            tls.update(PeerTrustUpdate {
                peers: pins_of(&next),
                anchors: st.anchors.clone(),
            })
            .map_err(|e| e.to_string())?;
        }
        if !core.keyring_from_roster() {
            core.set_trusted_keys(
                st.trusted
                    .iter()
                    .cloned()
                    .chain(next.key_records().cloned()),
            );
        }
        self.recheck_connections();
        let redial: BTreeSet<String> = diff
            .changed
            .iter()
            .filter(|id| {
                let (a, b) = (old.members.get(*id), next.members.get(*id));
                a.map(|m| (&m.endpoints, &m.tls_pins)) != b.map(|m| (&m.endpoints, &m.tls_pins))
            })
            .cloned()
            .collect();
        if let Some(sync) = core.sync_handle() {
            sync.set_roster(next.members.values().cloned().collect(), redial)
                .await
                .map_err(|e| e.to_string())?;
        }
        for id in &diff.added {
            tracing::info!(member = %id, version = next.version, "member added");
        }
        for id in &diff.removed {
            tracing::info!(member = %id, version = next.version,
                "member removed: connections closed, its new items refused");
        }
        for id in &diff.changed {
            tracing::info!(member = %id, version = next.version,
                "member changed (endpoints, keys or pins)");
        }
        self.metrics
            .membership_change("member_added", diff.added.len() as u64);
        self.metrics
            .membership_change("member_removed", diff.removed.len() as u64);
        self.metrics
            .membership_change("member_changed", diff.changed.len() as u64);
        self.metrics.set_roster_version(next.version);
        core.set_membership(next);
        drop(core);
        self.refresh_reserved().await;
        Ok(diff)
    }

    /// Applies a new membership (serialised with reloads).
    pub(crate) async fn apply(&self, next: Membership) -> Result<MembershipDiff, String> {
        let st = self.state.lock().await;
        self.apply_locked(&st, next).await
    }

    /// Re-reads the config file and the TLS files and applies what can change live; a file
    /// that does not load (or a TLS file that does not) changes nothing.
    pub(crate) async fn reload(&self) -> Result<ReloadReport, String> {
        let mut st = self.state.lock().await;
        let path = st.started.path.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|e| format!("reload task failed: {e}"))?;
        let new = match loaded {
            Ok(c) => c,
            Err(e) => {
                let problems: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
                for p in &problems {
                    tracing::warn!(problem = %p, "config reload refused; the running config stays");
                }
                self.metrics.reload("refused");
                return Err(problems.join("\n"));
            }
        };
        // Everything fallible first: nothing is applied unless all of it loads.
        let mut identity = None;
        let mut anchors = st.anchors.clone();
        if let (Some(_), Some(p)) = (&self.tls, &new.peer) {
            let read = || -> Result<_, transport::TransportError> {
                let cert = transport::read_file(&p.tls_cert, "peer.tls_cert")?;
                let key = transport::read_private_file(&p.tls_key, "peer.tls_key")?;
                let anchors = transport::anchors_from_files(&p.trust_anchors)?;
                Ok((cert, key, anchors))
            };
            match read() {
                Ok((cert, key, a)) => {
                    identity = Some((cert, key));
                    anchors = a;
                }
                Err(e) => {
                    let msg = format!("{}: {e}", new.path.display());
                    tracing::warn!(error = %msg, "config reload refused; the running config stays");
                    self.metrics.reload("refused");
                    return Err(msg);
                }
            }
        }
        let mut applied = Vec::new();
        if let (Some(tls), Some((cert, key))) = (&self.tls, identity) {
            let before = tls.own_pin();
            if let Err(e) = tls.set_identity(&cert, &key) {
                let msg = format!("{}: {e}", new.path.display());
                tracing::warn!(error = %msg, "config reload refused; the running config stays");
                self.metrics.reload("refused");
                return Err(msg);
            }
            let after = tls.own_pin();
            if before != after {
                let pin = after.map(|p| p.to_string()).unwrap_or_default();
                tracing::info!(%pin, "peer TLS certificate replaced; new handshakes present it");
                applied.push(format!("peer.tls_cert (pin {pin})"));
            }
        }
        if anchors != st.anchors {
            applied.push("peer.trust_anchors".to_string());
        }
        st.anchors = anchors;
        if new.trusted != st.trusted {
            applied.push("trusted".to_string());
        }
        st.trusted = new.trusted.clone();
        let limits_live = crate::model::Limits {
            max_payload_bytes: st.started.limits.max_payload_bytes,
            ..new.limits.clone()
        };
        let core = self.core()?;
        if *core.limits() != limits_live {
            core.set_limits(limits_live);
            applied.push("limits".to_string());
        }
        let in_force = core.membership();
        let mut restart = restart_keys(&st.started, &new);
        let old_identity = core.identity();
        let mut switched = None;
        match new_signing_key(&core, &new) {
            Ok(None) => {}
            Ok(Some(id)) => {
                switched = Some(id.key_id().to_string());
                core.set_identity(Arc::new(id));
            }
            Err(why) => {
                tracing::warn!(file = %new.member.key_file.display(), problem = %why,
                    key = %old_identity.key_id(),
                    "member.key_file not applied; the running signing key stays");
                restart.push(format!("member.key_file not applied: {why}"));
            }
        }
        drop(core);
        let next = if in_force.version == 0 {
            new.membership()
        } else {
            if new.members != st.started.members {
                tracing::warn!(
                    version = in_force.version,
                    "[[members]] in the config file is not applied: a signed roster is in force"
                );
                restart.push("members (a signed roster is in force)".to_string());
            }
            (*in_force).clone()
        };
        let diff = match self.apply_locked(&st, next).await {
            Ok(d) => d,
            Err(e) => {
                if switched.is_some()
                    && let Ok(core) = self.core()
                {
                    core.set_identity(Arc::clone(&old_identity));
                }
                return Err(e);
            }
        };
        if let Some(key) = &switched {
            tracing::info!(old = %old_identity.key_id(), new = %key,
                file = %new.member.key_file.display(),
                "signing key switched: new publishes are signed with the new key");
            applied.push(format!("member.key_file (signing key {key})"));
        }
        for id in &diff.added {
            applied.push(format!("member {id} added"));
        }
        for id in &diff.removed {
            applied.push(format!("member {id} removed"));
        }
        for id in &diff.changed {
            applied.push(format!("member {id} changed"));
        }
        for key in &restart {
            tracing::warn!(key = %key, file = %new.path.display(),
                "setting changed in the config file needs a restart to take effect; the running \
                 value stays");
        }
        self.metrics.set_restart_required(restart.clone());
        self.metrics.reload("applied");
        tracing::info!(applied = %applied.join("; "), restart_required = %restart.join(", "),
            "config reloaded");
        Ok(ReloadReport {
            applied,
            restart_required: restart,
        })
    }
}

/// The key `new`'s `member.key_file` holds, when it differs from the one signing and may sign
/// for this member now (see the module doc); `Ok(None)` when it is the same key; the problem
/// otherwise (the caller keeps the running key).
fn new_signing_key(
    core: &NodeCore,
    new: &Config,
) -> Result<Option<crate::envelope::SigningIdentity>, String> {
    let path = &new.member.key_file;
    let id = crate::keys::load_key_file(path).map_err(|e| e.to_string())?;
    let me = core.member();
    if id.member() != me {
        return Err(format!(
            "{} belongs to member {:?}, not {me:?}",
            path.display(),
            id.member()
        ));
    }
    if id.key_id() == core.identity().key_id() {
        return Ok(None);
    }
    let kid = id.key_id().to_string();
    if let Some(r) = core.roster() {
        let current = r.current();
        return match crate::roster::own_key_in(&current.roster, me, &kid, crate::now_ms()) {
            Ok(()) => Ok(Some(id)),
            Err(crate::roster::OwnKeyProblem::NotMember) => Err(format!(
                "{}: {me} is not a member of roster version {} in force",
                path.display(),
                current.roster.version
            )),
            Err(crate::roster::OwnKeyProblem::Invalid(why)) => {
                Err(format!("{}: {why}", path.display()))
            }
        };
    }
    let trusted = new
        .trusted
        .iter()
        .any(|k| k.member == me && k.key_id == kid);
    match new.own_roster_entry() {
        Some(own)
            if !own.keys.is_empty() && !own.keys.iter().any(|k| k.key_id == kid) && !trusted =>
        {
            Err(format!(
                "{}: key {kid} is in neither [[members]] {me}'s keys ({}) nor [[trusted]]",
                path.display(),
                own.keys
                    .iter()
                    .map(|k| k.key_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        _ => Ok(Some(id)),
    }
}

/// `Live` as `NodeCore` reaches it.
#[derive(Debug)]
pub(crate) struct LiveHandle(pub(crate) Arc<Live>);

impl ApplyMembership for LiveHandle {
    fn apply(
        &self,
        next: Membership,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<MembershipDiff, String>> + Send + '_>,
    > {
        Box::pin(self.0.apply(next))
    }

    fn reload(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<ReloadReport, String>> + Send + '_>,
    > {
        Box::pin(self.0.reload())
    }
}

/// Re-reads the config on every SIGHUP until `cancel` (registered by the caller before the node
/// announces it started, so an early SIGHUP never kills the process).
pub(crate) async fn on_sighup(
    live: Arc<Live>,
    mut hup: tokio::signal::unix::Signal,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            got = hup.recv() => {
                if got.is_none() {
                    break;
                }
                tracing::info!("SIGHUP received: reloading the config");
                // Errors are logged by `reload`.
                let _ = live.reload().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::{ExampleMember, FederatedExample};
    use crate::membership::Member;

    struct Fixture {
        dir: tempfile::TempDir,
        live: Arc<Live>,
        core: Arc<NodeCore>,
        tls: PeerTls,
        metrics: Arc<Metrics>,
        to_key: String,
    }

    fn write_config(dir: &std::path::Path, members: &[(&str, &str)], listen: &str) {
        let x = FederatedExample {
            member_id: "ws-cert".into(),
            name: "Samoa CERT".into(),
            key_file: "ws.key".into(),
            data_dir: "data".into(),
            peer_listen: listen.into(),
            tls_cert: "tls.pem".into(),
            tls_key: "tls.key".into(),
            members: members
                .iter()
                .map(|(id, pin)| ExampleMember {
                    id: (*id).into(),
                    name: (*id).into(),
                    endpoints: vec!["127.0.0.1:7402".into()],
                    public_keys: vec![],
                    tls_pins: vec![(*pin).into()],
                })
                .collect(),
            ..Default::default()
        };
        std::fs::write(dir.join("tanoad.toml"), Config::example_federated(&x)).unwrap();
    }

    fn fixture() -> Fixture {
        transport::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let key = crate::keys::generate().unwrap();
        crate::keys::write_key_file(&dir.path().join("ws.key"), "ws-cert", &key).unwrap();
        let cert = tanoa_pki::self_signed_member("ws-cert", 2).unwrap();
        std::fs::write(dir.path().join("tls.pem"), &cert.cert_pem).unwrap();
        tanoa_pki::write_private_pem(&dir.path().join("tls.key"), &cert.key_pem).unwrap();
        let pin = format!("sha256:{}", "ab".repeat(32));
        write_config(dir.path(), &[("to-cert", &pin)], "127.0.0.1:7401");
        let config = Config::load(dir.path().join("tanoad.toml")).unwrap();
        let metrics = Arc::new(Metrics::new());
        let tls = crate::node::peer_tls(&config, transport::logging_hook())
            .unwrap()
            .unwrap();
        let identity = crate::keys::load_key_file(&dir.path().join("ws.key")).unwrap();
        let store: Arc<dyn crate::store::Store> = Arc::new(crate::store::MemoryStore::new());
        let core = Arc::new(NodeCore::new(
            identity,
            "Samoa CERT",
            config.keyring_records(),
            config.limits.clone(),
            store,
        ));
        core.set_membership(config.membership());
        let live = Arc::new(
            Live::new(
                &config,
                Arc::clone(&core),
                Some(tls.clone()),
                Arc::clone(&metrics),
            )
            .unwrap(),
        );
        core.attach_live(Arc::new(LiveHandle(Arc::clone(&live))));
        let to_key = crate::keys::public_hex(&crate::keys::generate().unwrap().verifying_key());
        Fixture {
            dir,
            live,
            core,
            tls,
            metrics,
            to_key,
        }
    }

    fn member(id: &str, key_hex: &str, pin: SpkiPin) -> Member {
        let key = crate::keys::parse_public_hex(key_hex).unwrap();
        Member {
            id: id.into(),
            name: id.into(),
            endpoints: vec!["127.0.0.1:7409".into()],
            keys: vec![PublicKeyRecord::new(id, key, None, None)],
            tls_pins: vec![pin],
        }
    }

    /// The entry point the roster rules call: a signed version applied live everywhere, and a
    /// later SIGHUP does not override it with the file's `[[members]]`.
    #[tokio::test]
    async fn a_signed_membership_applies_everywhere_and_sighup_does_not_override_it() {
        let f = fixture();
        assert_eq!(f.tls.peers().into_iter().collect::<Vec<_>>(), ["to-cert"]);
        let ck = member("ck-cert", &f.to_key, SpkiPin([7; 32]));
        let ck_key = ck.keys[0].key_id.clone();
        let next = Membership {
            federation: "pacific".into(),
            version: 1,
            members: [("ck-cert".to_string(), ck)].into(),
        };
        let diff = f.core.apply_membership(next).await.unwrap();
        assert_eq!(diff.added, BTreeSet::from(["ck-cert".to_string()]));
        assert_eq!(diff.removed, BTreeSet::from(["to-cert".to_string()]));
        // Keyring, pins, snapshot, metrics: nothing keeps the old list.
        assert!(f.core.keyring().get(&ck_key).is_some());
        assert_eq!(f.tls.peers().into_iter().collect::<Vec<_>>(), ["ck-cert"]);
        assert_eq!(f.tls.pins_of("ck-cert"), [SpkiPin([7; 32])]);
        assert_eq!(f.core.membership().version, 1);
        assert_eq!(f.metrics.membership_changes("member_added"), 1);
        assert_eq!(f.metrics.membership_changes("member_removed"), 1);
        // The file's [[members]] changes, but the signed roster stays in force.
        write_config(
            f.dir.path(),
            &[("fj-cert", &format!("sha256:{}", "cd".repeat(32)))],
            "127.0.0.1:7401",
        );
        let report = f.live.reload().await.unwrap();
        assert_eq!(f.core.membership().version, 1);
        assert_eq!(f.tls.peers().into_iter().collect::<Vec<_>>(), ["ck-cert"]);
        assert!(
            report
                .restart_required
                .iter()
                .any(|k| k.contains("signed roster")),
            "{report:?}"
        );
    }

    #[tokio::test]
    async fn a_reload_applies_members_live_and_names_settings_that_need_a_restart() {
        let f = fixture();
        let pin = format!("sha256:{}", "cd".repeat(32));
        write_config(f.dir.path(), &[("fj-cert", &pin)], "127.0.0.1:7499");
        let report = f.live.reload().await.unwrap();
        assert_eq!(report.restart_required, ["peer.listen"]);
        assert!(
            report.applied.contains(&"member fj-cert added".to_string())
                && report
                    .applied
                    .contains(&"member to-cert removed".to_string()),
            "{report:?}"
        );
        assert_eq!(f.tls.peers().into_iter().collect::<Vec<_>>(), ["fj-cert"]);
        assert_eq!(f.metrics.restart_required(), ["peer.listen"]);
        // A file that does not load changes nothing.
        std::fs::write(f.dir.path().join("tanoad.toml"), "[member]\nid = 5\n").unwrap();
        let err = f.live.reload().await.unwrap_err();
        assert!(err.contains("member.id"), "{err}");
        assert_eq!(f.tls.peers().into_iter().collect::<Vec<_>>(), ["fj-cert"]);
        assert_eq!(f.metrics.reloads("refused"), 1);
        assert_eq!(f.metrics.reloads("applied"), 1);
    }

    /// `member.key_file` applies live: a new key of this member becomes the signing identity
    /// (and is in the keyring); a key file group/others can read, or a key of another member,
    /// is not applied, the running key stays and the problem is reported, the rest of the
    /// reload still applies.
    #[tokio::test]
    async fn a_reload_switches_to_a_new_valid_signing_key_and_keeps_the_old_one_otherwise() {
        use std::os::unix::fs::PermissionsExt as _;
        let f = fixture();
        let path = f.dir.path().join("ws.key");
        let old = f.core.identity().key_id().to_string();
        // Same key: nothing to apply, nothing to report.
        let report = f.live.reload().await.unwrap();
        assert!(report.restart_required.is_empty(), "{report:?}");
        assert_eq!(f.core.identity().key_id(), old);
        // A readable-by-others new key: refused, the old key signs.
        let replace = |member: &str, mode: u32| {
            let key = crate::keys::generate().unwrap();
            std::fs::remove_file(&path).unwrap();
            crate::keys::write_key_file(&path, member, &key).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            crate::envelope::key_id_of(&key.verifying_key())
        };
        let loose = replace("ws-cert", 0o644);
        let report = f.live.reload().await.unwrap();
        assert_eq!(f.core.identity().key_id(), old);
        assert!(
            report.restart_required.len() == 1
                && report.restart_required[0].starts_with("member.key_file not applied")
                && report.restart_required[0].contains("ws.key"),
            "{report:?}"
        );
        assert_eq!(f.metrics.restart_required(), report.restart_required);
        assert!(f.core.keyring().get(&loose).is_none());
        // Another member's key: refused.
        replace("to-cert", 0o600);
        let report = f.live.reload().await.unwrap();
        assert_eq!(f.core.identity().key_id(), old);
        assert!(
            report.restart_required[0].contains("belongs to member \"to-cert\""),
            "{report:?}"
        );
        // A new key of this member, 0600: it signs from now on, and peers' keys stay.
        let new = replace("ws-cert", 0o600);
        let report = f.live.reload().await.unwrap();
        assert_eq!(f.core.identity().key_id(), new);
        assert!(report.restart_required.is_empty(), "{report:?}");
        assert!(
            report
                .applied
                .contains(&format!("member.key_file (signing key {new})")),
            "{report:?}"
        );
        assert!(f.core.keyring().get(&new).is_some());
        assert!(f.metrics.restart_required().is_empty());
        let p = f
            .core
            .publish(
                &crate::publish::tests::draft("", "after the switch", "192.0.2.7"),
                "test",
            )
            .await
            .unwrap();
        let item = f.core.store().get(&p.item_id).unwrap().unwrap();
        assert_eq!(item.envelope.key_id, new);
    }
}
