//! The independent ecosystem tools (Python, from PyPI) that the interop tests check Tanoa
//! against, and the vendored third-party test material.
//!
//! Owns: creating the venv once per machine (`interop/setup-venv.sh`, serialized across test
//! processes by an exclusive lock on a file beside the venv), running Python checker scripts
//! from `integration-tests/interop/` with a bound, and the path of `testdata/` (a verbatim copy
//! of the shared third-party data; see `testdata/TANOA-COPY.md`).
//! Must never: install anything outside the repository's own venv, or reach the network except
//! PyPI during setup.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::RunOutput;

/// How long creating the venv may take (pip install from PyPI).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(600);
/// How long one checker script may take by default.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration-tests has a parent")
        .to_path_buf()
}

/// `testdata/`: the vendored third-party material (STIX, TLP, MITRE, MISP, TAXII).
pub fn testdata() -> PathBuf {
    repo_root().join("testdata")
}

/// `integration-tests/interop/`: the checker scripts.
pub fn scripts_dir() -> PathBuf {
    repo_root().join("integration-tests").join("interop")
}

/// The venv's python, creating the venv first if needed (once per test process; other test
/// processes wait on the lock file).
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let script = scripts_dir().join("setup-venv.sh");
        let lock = repo_root().join("integration-tests").join(".venv.lock");
        // flock(1) serializes concurrent setups from several test processes.
        let out = Command::new("flock")
            .arg(&lock)
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .expect("run flock integration-tests/interop/setup-venv.sh");
        assert!(
            out.status.success(),
            "setup-venv.sh failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        PathBuf::from(path)
    })
    .clone()
}

/// Runs `integration-tests/interop/<script>` with the venv's python and `args`, bounded by
/// `SCRIPT_TIMEOUT`.
pub async fn run_script<I, S>(script: &str, args: I) -> RunOutput
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let py = tokio::task::spawn_blocking(python)
        .await
        .expect("venv setup task");
    let mut all: Vec<std::ffi::OsString> = vec![scripts_dir().join(script).into_os_string()];
    all.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
    crate::run_command_for(&py, all, SCRIPT_TIMEOUT).await
}
