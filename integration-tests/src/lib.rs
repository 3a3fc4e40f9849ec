//! Harness of the integration tests: member directories, real `tanoad` processes
//! (start, SIGTERM, SIGKILL, restart), the crash test's publish loop, and bounded runs of the
//! CLI.
//!
//! Owns: the on-disk layout of a test member (`keys/<id>.key`, `tanoad.toml`, `data/`, the
//! daemon's captured stdout/stderr), process lifetimes (every child is killed on drop), and
//! sample advisories built from documentation ranges.
//! Must never: wait without a bound, sleep a fixed time where it can poll, or leave a process
//! running after the test that started it (pass or fail).

// Test support code: a failed step must fail the test at once, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod corpus;
pub mod federation;
pub mod interop;
pub mod linkemu;
pub mod proxy;

use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use tanoa_daemon::config::Config;
use tanoa_daemon::envelope::{self, Envelope, Keyring, PublicKeyRecord, Verified};
use tanoa_daemon::keys;
use tanoa_daemon::model::{Advisory, Limits};
use tanoa_proto::v1 as pb;
use tanoa_proto::v1::operator_client::OperatorClient;
use tempfile::TempDir;
use tonic::transport::Channel;

/// How long a daemon may take to answer Status after it was spawned.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a daemon may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one CLI or `check-config` run may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll interval while waiting for a process.
const POLL: Duration = Duration::from_millis(10);

/// Paths of the test binaries of this package (built by cargo for the integration tests).
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The daemon (`tanoa_daemon::node::main_entry`).
    pub tanoad: PathBuf,
    /// The CLI (`tanoa_cli::main_entry`).
    pub tanoa: PathBuf,
    /// The crash test's publish loop.
    pub publish_loop: PathBuf,
}

/// `Binaries` of this package; expands `env!("CARGO_BIN_EXE_…")` in the calling test crate
/// (those variables only exist when compiling integration tests).
#[macro_export]
macro_rules! binaries {
    () => {
        $crate::Binaries {
            tanoad: ::std::path::PathBuf::from(env!("CARGO_BIN_EXE_it-tanoad")),
            tanoa: ::std::path::PathBuf::from(env!("CARGO_BIN_EXE_it-tanoa")),
            publish_loop: ::std::path::PathBuf::from(env!("CARGO_BIN_EXE_it-publish-loop")),
        }
    };
}

/// Sends SIGTERM to a process we started.
#[allow(unsafe_code)]
pub fn sigterm(pid: u32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: kill(2) takes no pointers; `pid` is a child of this process that has not been
    // reaped yet (callers hold its `Child` and have not waited on it), so it names that child.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sends SIGHUP to a process we started (tanoad re-reads its config).
#[allow(unsafe_code)]
pub fn sighup(pid: u32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: as in `sigterm`: kill(2) takes no pointers and `pid` is our unreaped child.
    let rc = unsafe { libc::kill(pid, libc::SIGHUP) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Waits for `child` to exit, polling, for at most `timeout`; `None` if it is still running.
pub async fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Output of a finished command.
#[derive(Debug)]
pub struct RunOutput {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

impl RunOutput {
    /// stdout parsed as one JSON document (panics with the output if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Panics (showing both streams) unless the exit code is `code`.
    pub fn expect_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: expected exit code {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `program args…` with stdin closed and `TANOA_*` variables removed, for at most
/// `COMMAND_TIMEOUT` (the process is killed and the test fails after that).
pub async fn run_command<I, S>(program: &Path, args: I) -> RunOutput
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_command_for(program, args, COMMAND_TIMEOUT).await
}

/// `run_command` with its own bound.
pub async fn run_command_for<I, S>(program: &Path, args: I, timeout: Duration) -> RunOutput
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in [
        "TANOA_HOME",
        "TANOA_CONFIG",
        "TANOA_SOCKET",
        "TANOAD_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} {:?} did not finish within {timeout:?}",
                program.display(),
                args
            )
        })
        .unwrap_or_else(|e| panic!("waiting for {}: {e}", program.display()));
    RunOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One member directory and, when started, its `tanoad` process.
///
/// Layout: `<dir>/tanoad.toml`, `<dir>/keys/<id>.key` (0600), `<dir>/data/` (store and
/// operator socket), `<dir>/tanoad.stdout.log` and `<dir>/tanoad.stderr.log` (appended to at
/// every start). The process is killed when the node is dropped; if the test is panicking, the
/// daemon's logs are printed first.
#[derive(Debug)]
pub struct TestNode {
    dir: TempDir,
    tanoad: PathBuf,
    member: String,
    config: PathBuf,
    socket: PathBuf,
    public_key: VerifyingKey,
    child: Option<Child>,
    starts: u32,
    extra_args: Vec<String>,
}

impl TestNode {
    /// Creates a member directory for `member` (fresh key, `Config::example` config plus
    /// `extra_config` appended, e.g. `[[trusted]]` tables) without starting the daemon.
    pub fn create(tanoad: &Path, member: &str, extra_config: &str) -> TestNode {
        let dir = tempfile::Builder::new()
            .prefix("tanoa-it-")
            .tempdir()
            .expect("tempdir");
        let keys_dir = dir.path().join("keys");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&keys_dir)
            .expect("keys dir");
        let key = keys::generate().expect("key");
        keys::write_key_file(&keys_dir.join(format!("{member}.key")), member, &key)
            .expect("key file");
        let config = dir.path().join("tanoad.toml");
        let mut text = Config::example(member, &format!("Test CERT {member}"));
        text.push('\n');
        text.push_str(extra_config);
        std::fs::write(&config, text).expect("write config");
        TestNode::adopt(tanoad, dir, config)
    }

    /// Wraps an existing member directory (e.g. made by `tanoa init`) whose config is
    /// `config` (inside `dir`).
    pub fn adopt(tanoad: &Path, dir: TempDir, config: PathBuf) -> TestNode {
        let loaded = Config::load(&config)
            .unwrap_or_else(|e| panic!("config {} does not load: {e}", config.display()));
        let identity = keys::load_key_file(&loaded.member.key_file).expect("load key");
        TestNode {
            dir,
            tanoad: tanoad.to_path_buf(),
            member: loaded.member.id.clone(),
            config,
            socket: loaded.operator.socket.clone(),
            public_key: identity.verifying_key(),
            child: None,
            starts: 0,
            extra_args: Vec::new(),
        }
    }

    /// Creates a member and starts its daemon (waits until it answers Status).
    pub async fn start_new(tanoad: &Path, member: &str, extra_config: &str) -> TestNode {
        let mut node = TestNode::create(tanoad, member, extra_config);
        node.start().await;
        node
    }

    /// Extra command-line arguments for the next starts (e.g. `--log-format json`).
    pub fn set_args(&mut self, args: &[&str]) {
        self.extra_args = args.iter().map(ToString::to_string).collect();
    }

    /// The member directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// This member's id.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The config file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The operator socket.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The member's public signing key.
    pub fn public_key(&self) -> VerifyingKey {
        self.public_key
    }

    /// A keyring holding only this member's key (what a partner trusts).
    pub fn keyring(&self) -> Keyring {
        let mut k = Keyring::new();
        k.insert(PublicKeyRecord::new(
            self.member.clone(),
            self.public_key,
            None,
            None,
        ));
        k
    }

    /// Process id of the running daemon.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's captured stdout and stderr (all starts so far).
    pub fn logs(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- tanoad stdout ({})\n{}--- tanoad stderr\n{}",
            self.dir.path().display(),
            read("tanoad.stdout.log"),
            read("tanoad.stderr.log")
        )
    }

    fn log_file(&self, name: &str) -> std::fs::File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(name))
            .expect("open log file")
    }

    /// Spawns the daemon and waits (at most `READY_TIMEOUT`) until its socket answers Status
    /// and it logged "tanoad started" (after which it handles SIGTERM).
    pub async fn start(&mut self) {
        self.spawn();
        self.wait_ready(true).await;
    }

    /// Spawns the daemon and returns as soon as its socket answers Status, without waiting for
    /// the "tanoad started" log line.
    pub async fn start_answering(&mut self) {
        self.spawn();
        self.wait_ready(false).await;
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "tanoad is already running");
        self.starts += 1;
        for name in ["tanoad.stdout.log", "tanoad.stderr.log"] {
            writeln!(self.log_file(name), "=== start #{} ===", self.starts).expect("log");
        }
        let child = Command::new(&self.tanoad)
            .arg("--config")
            .arg(&self.config)
            .arg("--log-level")
            .arg("info")
            .args(&self.extra_args)
            .env_remove("TANOAD_CONFIG")
            .stdin(Stdio::null())
            .stdout(self.log_file("tanoad.stdout.log"))
            .stderr(self.log_file("tanoad.stderr.log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", self.tanoad.display()));
        self.child = Some(child);
    }

    /// How many times the daemon logged "tanoad started" so far.
    fn started_lines(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("tanoad.stderr.log"))
            .unwrap_or_default()
            .matches("tanoad started")
            .count()
    }

    async fn wait_ready(&mut self, want_log_line: bool) {
        let started = Instant::now();
        let mut last_err = String::from("socket not created yet");
        let want_lines = usize::try_from(self.starts).unwrap_or(usize::MAX);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                panic!(
                    "tanoad exited with {status} before answering Status\n{}",
                    self.logs()
                );
            }
            if self.socket.exists() {
                let attempt = tokio::time::timeout(Duration::from_secs(2), async {
                    let mut c = tanoa_daemon::client::connect_unix(&self.socket)
                        .await
                        .map_err(|e| e.to_string())?;
                    c.status(pb::StatusRequest {})
                        .await
                        .map_err(|s| s.to_string())
                })
                .await;
                match attempt {
                    Ok(Ok(_)) if !want_log_line || self.started_lines() >= want_lines => return,
                    Ok(Ok(_)) => last_err = "answers, but has not logged \"tanoad started\"".into(),
                    Ok(Err(e)) => last_err = e,
                    Err(_) => last_err = "Status timed out".into(),
                }
            }
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "tanoad did not answer Status on {} within {READY_TIMEOUT:?} (last error: \
                     {last_err})\n{}",
                    self.socket.display(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A fresh operator client on the socket.
    pub async fn client(&self) -> OperatorClient<Channel> {
        tanoa_daemon::client::connect_unix(&self.socket)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", self.logs()))
    }

    /// Sends SIGTERM and waits (at most `STOP_TIMEOUT`); panics unless the daemon exits 0.
    pub async fn stop(&mut self) {
        let mut child = self.child.take().expect("tanoad is not running");
        sigterm(child.id()).expect("SIGTERM");
        let status = wait_child(&mut child, STOP_TIMEOUT).await;
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tanoad did not exit within {STOP_TIMEOUT:?} after SIGTERM\n{}",
                self.logs()
            );
        };
        assert_eq!(
            status.code(),
            Some(0),
            "tanoad exited with {status} after SIGTERM (expected 0)\n{}",
            self.logs()
        );
    }

    /// Kills the daemon with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("tanoad is not running");
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "tanoad was not killed by SIGKILL: {status}\n{}",
            self.logs()
        );
    }

    /// Stops the daemon gracefully if it runs, then starts it again.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            self.stop().await;
        }
        self.start().await;
    }

    /// True while the daemon process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// One acknowledged publish as printed by `it-publish-loop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Item id (hex).
    pub item_id: String,
    /// Advisory id.
    pub advisory_id: String,
    /// Revision.
    pub revision: u64,
}

impl Ack {
    /// Parses `ACK <item_id> <advisory_id> <revision>`.
    pub fn parse(line: &str) -> Option<Ack> {
        let mut parts = line.split_whitespace();
        if parts.next()? != "ACK" {
            return None;
        }
        let item_id = parts.next()?.to_string();
        let advisory_id = parts.next()?.to_string();
        let revision = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Ack {
            item_id,
            advisory_id,
            revision,
        })
    }
}

/// A running `it-publish-loop`; its stdout is read line by line by a thread.
#[derive(Debug)]
pub struct PublishLoop {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr_path: PathBuf,
    /// Every stdout line received so far.
    pub received: Vec<String>,
}

impl PublishLoop {
    /// Starts the loop against `socket`; its stderr goes to `stderr_path`.
    pub fn spawn(bin: &Path, socket: &Path, prefix: &str, stderr_path: &Path) -> PublishLoop {
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_path)
            .expect("publish-loop stderr file");
        let mut child = Command::new(bin)
            .arg("--socket")
            .arg(socket)
            .arg("--prefix")
            .arg(prefix)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PublishLoop {
            child: Some(child),
            lines: rx,
            reader: Some(reader),
            stderr_path: stderr_path.to_path_buf(),
            received: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.received.push(line);
        }
    }

    /// The loop's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits (at most `timeout`) for the `START` line; panics if the loop exits first.
    pub async fn wait_started(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if self.received.iter().any(|l| l == "START") {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.drain();
                panic!(
                    "it-publish-loop exited with {status} before START; stdout {:?}; stderr:\n{}",
                    self.received,
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "it-publish-loop printed no START within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// True while the loop has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits (at most `timeout`) for the loop to exit and for its stdout to close; returns the
    /// exit status and every ACK it printed. Panics on a malformed line.
    pub async fn finish(&mut self, timeout: Duration) -> (ExitStatus, Vec<Ack>) {
        let mut child = self.child.take().expect("publish loop already finished");
        let Some(status) = wait_child(&mut child, timeout).await else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "it-publish-loop did not exit within {timeout:?} after the daemon died; stderr:\n{}",
                self.stderr()
            );
        };
        // stdout reaches EOF once the process is gone: join the reader (bounded by that).
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.drain();
        let mut acks = Vec::new();
        for line in &self.received {
            if line == "START" {
                continue;
            }
            let ack = Ack::parse(line)
                .unwrap_or_else(|| panic!("it-publish-loop printed a malformed line {line:?}"));
            acks.push(ack);
        }
        (status, acks)
    }
}

impl Drop for PublishLoop {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A valid draft with one indicator of each family the tests search for: ipv4
/// `192.0.2.<host>`, cidr `198.51.100.0/24`, a `.example` domain and a sha256.
pub fn sample_draft(id: &str, title: &str, host: u8) -> pb::AdvisoryDraft {
    let ind = |kind: pb::IndicatorKind, value: &str, note: &str| pb::Indicator {
        kind: kind as i32,
        value: value.to_string(),
        confidence: 80,
        valid_until_ms: 0,
        note: note.to_string(),
    };
    pb::AdvisoryDraft {
        id: id.to_string(),
        tlp: pb::Tlp::Green as i32,
        title: title.to_string(),
        summary: "Integration-test advisory; every indicator is a documentation value.".into(),
        severity: pb::Severity::High as i32,
        actors: vec!["APT40".into()],
        cves: vec!["CVE-2017-11882".into()],
        indicators: vec![
            ind(pb::IndicatorKind::Ipv4, &format!("192.0.2.{host}"), "C2"),
            ind(pb::IndicatorKind::Cidr, "198.51.100.0/24", "scanning range"),
            ind(
                pb::IndicatorKind::Domain,
                "Update.Pacific-News.example",
                "beacon",
            ),
            ind(
                pb::IndicatorKind::Sha256,
                "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
                "loader",
            ),
        ],
        references: vec!["https://attack.mitre.org/groups/G0065".into()],
        ..Default::default()
    }
}

/// A signed advisory of `identity`'s member with the given id and revision, built like the
/// daemon builds one (draft → advisory → normalize → sign).
pub fn signed_advisory(
    identity: &envelope::SigningIdentity,
    id: &str,
    revision: u64,
    host: u8,
) -> Verified<Advisory> {
    let now = tanoa_daemon::now_ms();
    let mut adv = tanoa_daemon::model::draft::draft_to_advisory(
        &tanoa_daemon::model::wire::draft_from_proto(sample_draft(
            id,
            "Signed outside the daemon",
            host,
        ))
        .expect("the sample draft converts"),
        identity.member(),
        id,
        revision,
        now,
        now,
    )
    .expect("draft converts");
    tanoa_daemon::model::normalize_advisory(&mut adv);
    identity.sign(adv, &Limits::default()).expect("sign")
}

/// Verifies a stored envelope (from a Get response) against `keyring` as a partner would.
pub fn verify_envelope(
    env: &pb::Envelope,
    keyring: &Keyring,
) -> Result<Verified<Advisory>, envelope::EnvelopeError> {
    envelope::verify(
        Envelope::from_proto(env.clone()),
        keyring,
        &Limits::default(),
    )
}

/// The gRPC status of a failed call, or a panic naming `what` if it succeeded.
pub fn expect_err<T: std::fmt::Debug>(r: Result<T, tonic::Status>, what: &str) -> tonic::Status {
    match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(s) => s,
    }
}

/// The `tanoa-reason` metadata of a status (empty if absent).
pub fn reason_of(status: &tonic::Status) -> String {
    status
        .metadata()
        .get(tanoa_daemon::api::error::REASON_METADATA)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}
