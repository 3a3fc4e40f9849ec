//! `tanoa init`: set up a new member (signing key, config, data directory).
//!
//! Owns: the layout of a member directory: `keys/<id>.key` (0600, in a 0700 directory),
//! `tanoad.toml` (from `Config::example`) and `data/` (0700).
//! Must never: overwrite an existing key or config, or print the private key.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use tanoa_daemon::config::Config;
use tanoa_daemon::model::validate::check_member_id;
use tanoa_daemon::{envelope, keys};

use crate::args::GlobalArgs;
use crate::connect::{self, CONFIG_FILE};
use crate::exit::Failure;
use crate::output;

/// `tanoa init` arguments.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Directory of the new member [default: $TANOA_HOME, else ./.tanoa].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Member id in the federation, e.g. ws-cert (lower-case letters, digits and '-',
    /// starting with a letter).
    #[arg(long, value_name = "ID")]
    pub id: String,
    /// Display name, e.g. "Samoa CERT".
    #[arg(long, value_name = "NAME")]
    pub name: String,
}

/// What `create_member` made.
#[derive(Debug, Clone)]
pub struct Member {
    /// Member id.
    pub member_id: String,
    /// Display name.
    pub name: String,
    /// Signing key id.
    pub key_id: String,
    /// Public key, hex.
    pub public_key: String,
    /// The config file.
    pub config: PathBuf,
    /// The private key file.
    pub key_file: PathBuf,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The operator socket the daemon will create.
    pub socket: PathBuf,
}

fn mkdir(path: &Path, mode: u32) -> Result<(), Failure> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| Failure::failed(format!("cannot create directory {}: {e}", path.display())))
}

/// Creates a member directory: validates the id and name, refuses to overwrite, generates the
/// signing key, writes the config, and checks that the config loads.
pub fn create_member(dir: &Path, id: &str, name: &str) -> Result<Member, Failure> {
    if let Err(e) = check_member_id(id) {
        return Err(Failure::usage(format!("--id: {e}")).hint("e.g. --id ws-cert"));
    }
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(Failure::usage(format!(
            "--name {name:?} must be a non-empty display name without control characters"
        )));
    }
    let config_path = dir.join(CONFIG_FILE);
    let key_dir = dir.join("keys");
    let key_path = key_dir.join(format!("{id}.key"));
    let data_dir = dir.join("data");
    for existing in [&config_path, &key_path] {
        if existing.exists() {
            return Err(Failure::failed(format!(
                "{} already exists; refusing to overwrite a member's config or key",
                existing.display()
            ))
            .hint("choose another --dir, or use the existing member"));
        }
    }
    mkdir(dir, 0o755)?;
    mkdir(&key_dir, 0o700)?;
    mkdir(&data_dir, 0o700)?;
    let key = keys::generate().map_err(|e| Failure::failed(e.to_string()))?;
    keys::write_key_file(&key_path, id, &key).map_err(|e| Failure::failed(e.to_string()))?;
    let body = Config::example(id, name);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&config_path)?;
        f.write_all(body.as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| Failure::failed(format!("cannot write {}: {e}", config_path.display())))?;
    let config = Config::load(&config_path).map_err(|e| {
        Failure::failed(format!(
            "the config just written does not load (a bug in tanoa init): {e}"
        ))
    })?;
    let public = key.verifying_key();
    Ok(Member {
        member_id: id.to_string(),
        name: name.to_string(),
        key_id: envelope::key_id_of(&public),
        public_key: keys::public_hex(&public),
        config: config_path,
        key_file: key_path,
        data_dir: config.storage.data_dir.clone(),
        socket: config.operator.socket.clone(),
    })
}

/// The `[[trusted]]` snippet partners add to their config.
pub fn trusted_snippet(m: &Member) -> String {
    format!(
        "[[trusted]]\nmember = \"{}\"\npublic_key = \"{}\"",
        m.member_id, m.public_key
    )
}

/// The commands to run next.
pub fn next_commands(m: &Member) -> Vec<String> {
    let cfg = m.config.display();
    vec![
        format!("tanoad --config {cfg}"),
        format!("tanoa --config {cfg} status"),
        format!("tanoa --config {cfg} publish examples/apt40-advisory.toml"),
        format!("tanoa --config {cfg} list"),
    ]
}

/// Runs `tanoa init`.
pub fn run(a: InitArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let dir = a
        .dir
        .clone()
        .unwrap_or_else(|| connect::home_dir(std::env::var_os("TANOA_HOME")));
    let m = create_member(&dir, &a.id, &a.name).context(format!("init {}", dir.display()))?;
    if g.json {
        output::print_json(&json!({
            "member_id": m.member_id,
            "name": m.name,
            "key_id": m.key_id,
            "public_key": m.public_key,
            "config": m.config,
            "key_file": m.key_file,
            "data_dir": m.data_dir,
            "socket": m.socket,
            "trusted_snippet": trusted_snippet(&m),
            "next": next_commands(&m),
        }));
        return Ok(());
    }
    outln!(
        "Member {} ({}) is set up in {}.",
        m.member_id,
        m.name,
        dir.display()
    );
    outln!(
        "{}",
        output::kv_table(&[
            ("Member id", m.member_id.clone()),
            ("Name", m.name.clone()),
            ("Key id", m.key_id.clone()),
            ("Public key", m.public_key.clone()),
            ("Config", m.config.display().to_string()),
            ("Signing key (0600)", m.key_file.display().to_string()),
            ("Data directory", m.data_dir.display().to_string()),
            ("Operator socket", m.socket.display().to_string()),
        ])
    );
    outln!("\nShare the public key with partner CERTs; they add this to their tanoad.toml:\n");
    for line in trusted_snippet(&m).lines() {
        outln!("  {line}");
    }
    outln!("\nNext:");
    for c in next_commands(&m) {
        outln!("  {c}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_creates_a_working_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ws");
        let m = create_member(&dir, "ws-cert", "Samoa CERT").unwrap();
        assert_eq!(m.key_file, dir.join("keys/ws-cert.key"));
        assert_eq!(mode(&m.key_file), 0o600);
        assert_eq!(mode(&dir.join("keys")), 0o700);
        assert!(dir.join("data").is_dir());
        assert_eq!(mode(&dir.join("data")), 0o700);
        let cfg = Config::load(dir.join("tanoad.toml")).unwrap();
        assert_eq!(cfg.member.id, "ws-cert");
        assert_eq!(cfg.member.name, "Samoa CERT");
        assert_eq!(cfg.member.key_file, m.key_file);
        let ident = keys::load_key_file(&m.key_file).unwrap();
        assert_eq!(ident.key_id(), m.key_id);
        assert_eq!(keys::public_hex(&ident.verifying_key()), m.public_key);
        assert_eq!(m.public_key.len(), 64);
        assert!(trusted_snippet(&m).contains(&m.public_key));
        assert!(next_commands(&m)[0].starts_with("tanoad --config "));
    }

    #[test]
    fn init_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let m = create_member(tmp.path(), "ws-cert", "Samoa CERT").unwrap();
        let before = std::fs::read(&m.key_file).unwrap();
        let f = create_member(tmp.path(), "ws-cert", "Samoa CERT").unwrap_err();
        assert_eq!(f.code, crate::exit::FAILED);
        assert!(f.message.contains("refusing to overwrite"), "{}", f.message);
        assert_eq!(std::fs::read(&m.key_file).unwrap(), before);
        // Another id in the same directory is refused too: the config is there.
        assert!(create_member(tmp.path(), "fj-cert", "Fiji").is_err());
    }

    #[test]
    fn init_rejects_bad_ids_and_names_as_usage_errors() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["", "WS-CERT", "ws cert", "-ws", "ws/cert", "ws_cert"] {
            let f = create_member(tmp.path(), bad, "x").unwrap_err();
            assert_eq!(f.code, crate::exit::USAGE, "{bad:?}");
        }
        let f = create_member(tmp.path(), "ws-cert", " ").unwrap_err();
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(!tmp.path().join("tanoad.toml").exists());
    }
}
