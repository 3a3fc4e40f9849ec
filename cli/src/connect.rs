//! Choosing and opening the connection to tanoad's operator API.
//!
//! Owns: the precedence of `--endpoint` (TCP + mTLS), `--socket`/`TANOA_SOCKET`,
//! `--config`/`TANOA_CONFIG` and the default `$TANOA_HOME/tanoad.toml` (TANOA_HOME defaults to
//! `./.tanoa`), and the wording of "cannot connect" failures.
//! Must never: fall back silently from one target to another (the operator must know which
//! node answered), or accept a plaintext TCP connection.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tanoa_daemon::client::{self, ClientError};
use tanoa_daemon::config::{Config, ConfigError};
use tanoa_proto::v1::operator_client::OperatorClient;
use tonic::transport::Channel;

use crate::args::GlobalArgs;
use crate::exit::Failure;

/// Directory used when `TANOA_HOME` is not set.
pub const DEFAULT_HOME: &str = ".tanoa";
/// Config file name inside a Tanoa home or `init --dir`.
pub const CONFIG_FILE: &str = "tanoad.toml";

/// The operator client type every command uses.
pub type Client = OperatorClient<Channel>;

/// Where to reach the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Unix socket, and how it was chosen (for messages).
    Unix {
        /// Socket path.
        path: PathBuf,
        /// The config file it came from, if any.
        config: Option<PathBuf>,
    },
    /// TCP with mutual TLS.
    Tls {
        /// `host:port` or `https://host:port`.
        endpoint: String,
        /// CA certificate file.
        ca: PathBuf,
        /// Client certificate file.
        cert: PathBuf,
        /// Client key file.
        key: PathBuf,
    },
}

/// The Tanoa home: `$TANOA_HOME`, else `./.tanoa`.
pub fn home_dir(tanoa_home: Option<OsString>) -> PathBuf {
    tanoa_home
        .filter(|h| !h.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_HOME), PathBuf::from)
}

/// The config file used when neither `--config` nor `--socket` is given.
pub fn default_config_path(tanoa_home: Option<OsString>) -> PathBuf {
    home_dir(tanoa_home).join(CONFIG_FILE)
}

/// Loads a tanoad config, turning problems into a usage failure that lists each key.
pub fn load_config(path: &Path) -> Result<Config, Failure> {
    Config::load(path).map_err(|e| config_failure(path, &e))
}

fn config_failure(path: &Path, e: &ConfigError) -> Failure {
    match e {
        ConfigError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Failure::failed(format!("no tanoad config at {}", path.display())).hint(
                "create one with `tanoa init --dir DIR --id ID --name NAME`, or pass --config \
                 FILE or --socket PATH (try `tanoa demo` for a ready-made node)",
            )
        }
        other => {
            let lines: Vec<String> = other.problems().iter().map(ToString::to_string).collect();
            Failure::usage(format!(
                "config {} is invalid:\n{}",
                path.display(),
                lines.join("\n")
            ))
            .hint("fix the keys named above (see the comments `tanoa init` writes)")
        }
    }
}

/// Chooses the target from the global options; `tanoa_home` is `$TANOA_HOME`.
pub fn resolve_target(g: &GlobalArgs, tanoa_home: Option<OsString>) -> Result<Target, Failure> {
    if let Some(endpoint) = &g.endpoint {
        let need = |v: &Option<PathBuf>, flag: &str| {
            v.clone()
                .ok_or_else(|| Failure::usage(format!("--endpoint needs {flag}")))
        };
        return Ok(Target::Tls {
            endpoint: endpoint.clone(),
            ca: need(&g.ca, "--ca")?,
            cert: need(&g.cert, "--cert")?,
            key: need(&g.key, "--key")?,
        });
    }
    if let Some(path) = &g.socket {
        return Ok(Target::Unix {
            path: path.clone(),
            config: None,
        });
    }
    let config_path = g
        .config
        .clone()
        .unwrap_or_else(|| default_config_path(tanoa_home));
    // Only the socket is read: a command whose output replaces a file the config names (the
    // roster file, say) must not depend on that file.
    let socket =
        Config::operator_socket(&config_path).map_err(|e| config_failure(&config_path, &e))?;
    Ok(Target::Unix {
        path: socket,
        config: Some(config_path),
    })
}

fn client_failure(target: &Target, e: ClientError) -> Failure {
    match e {
        ClientError::Connect {
            target: t,
            detail,
            hint,
        } => {
            let hint = match target {
                Target::Unix {
                    config: Some(cfg), ..
                } if hint.contains("tanoad --config") => hint.replace(
                    "tanoad --config <file>",
                    &format!("tanoad --config {}", cfg.display()),
                ),
                _ => hint,
            };
            Failure::failed(format!("cannot connect to tanoad at {t}: {detail}")).hint(hint)
        }
        ClientError::Endpoint { .. } => Failure::usage(e.to_string()),
        ClientError::Tls(t) => Failure::usage(format!("operator TLS material: {t}"))
            .hint("check --ca, --cert and --key (PEM files; see certs/README.md)"),
    }
}

/// Opens a client to `target`.
pub async fn connect_to(target: &Target) -> anyhow::Result<Client> {
    match target {
        Target::Unix { path, .. } => client::connect_unix(path)
            .await
            .map_err(|e| client_failure(target, e).into()),
        Target::Tls {
            endpoint,
            ca,
            cert,
            key,
        } => {
            let read = |p: &PathBuf, what: &str| {
                std::fs::read(p)
                    .map_err(|e| Failure::usage(format!("cannot read {what} {}: {e}", p.display())))
            };
            let ca_pem = read(ca, "--ca")?;
            let cert_pem = read(cert, "--cert")?;
            let key_pem = read(key, "--key")?;
            client::connect_tls(endpoint, &ca_pem, &cert_pem, &key_pem)
                .await
                .map_err(|e| client_failure(target, e).into())
        }
    }
}

/// Resolves the target from the global options and `$TANOA_HOME`, and connects.
pub async fn connect(g: &GlobalArgs) -> anyhow::Result<Client> {
    let target = resolve_target(g, std::env::var_os("TANOA_HOME"))?;
    connect_to(&target).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn home_defaults_to_dot_tanoa() {
        assert_eq!(home_dir(None), PathBuf::from(".tanoa"));
        assert_eq!(home_dir(Some("".into())), PathBuf::from(".tanoa"));
        assert_eq!(
            default_config_path(Some("/srv/tanoa".into())),
            PathBuf::from("/srv/tanoa/tanoad.toml")
        );
    }

    #[test]
    fn endpoint_wins_then_socket_then_config() {
        let g = GlobalArgs {
            endpoint: Some("https://127.0.0.1:7443".into()),
            ca: Some("ca.pem".into()),
            cert: Some("op.pem".into()),
            key: Some("op.key".into()),
            socket: Some("/tmp/s.sock".into()),
            ..GlobalArgs::default()
        };
        assert!(matches!(
            resolve_target(&g, None).unwrap(),
            Target::Tls { .. }
        ));
        let g = GlobalArgs {
            socket: Some("/tmp/s.sock".into()),
            config: Some("/nonexistent/tanoad.toml".into()),
            ..GlobalArgs::default()
        };
        assert_eq!(
            resolve_target(&g, None).unwrap(),
            Target::Unix {
                path: "/tmp/s.sock".into(),
                config: None
            }
        );
    }

    #[test]
    fn socket_is_read_from_the_config_written_by_init() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("node");
        crate::cmd::init::create_member(&dir, "ws-cert", "Samoa CERT").unwrap();
        let g = GlobalArgs {
            config: Some(dir.join("tanoad.toml")),
            ..GlobalArgs::default()
        };
        let Target::Unix { path, config } = resolve_target(&g, None).unwrap() else {
            panic!("not unix")
        };
        assert_eq!(path, dir.join("data").join("tanoad.sock"));
        assert_eq!(config, Some(dir.join("tanoad.toml")));
        // The same through TANOA_HOME.
        let Target::Unix { path, .. } =
            resolve_target(&GlobalArgs::default(), Some(dir.clone().into_os_string())).unwrap()
        else {
            panic!("not unix")
        };
        assert_eq!(path, dir.join("data").join("tanoad.sock"));
    }

    #[test]
    fn missing_default_config_says_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let f = resolve_target(&GlobalArgs::default(), Some(tmp.path().as_os_str().into()))
            .unwrap_err();
        assert_eq!(f.code, crate::exit::FAILED);
        assert!(f.message.contains("no tanoad config at"), "{}", f.message);
        assert!(f.hint.unwrap().contains("tanoa init"));
    }

    #[test]
    fn invalid_config_is_bad_input_naming_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("tanoad.toml");
        std::fs::write(&p, "[member]\nid = \"ws-cert\"\nname = \"x\"\nbogus = 1\n").unwrap();
        let g = GlobalArgs {
            config: Some(p),
            ..GlobalArgs::default()
        };
        let f = resolve_target(&g, None).unwrap_err();
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(f.message.contains("bogus"), "{}", f.message);
    }

    /// Finding the socket reads only `[storage]` and `[operator]`: a roster file being
    /// replaced (empty now, as `tanoa … > roster.json` leaves it) or a wrong hash does not stop
    /// a command; the daemon checks those at start.
    #[test]
    fn the_socket_is_found_without_checking_the_roster_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("node");
        crate::cmd::init::create_member(&dir, "ws-cert", "Samoa CERT").unwrap();
        std::fs::write(dir.join("roster.json"), "").unwrap();
        let cfg = dir.join("tanoad.toml");
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text.push_str(&format!(
            "\n[roster]\nfile = \"roster.json\"\nsha256 = \"{}\"\n",
            "ab".repeat(32)
        ));
        std::fs::write(&cfg, text).unwrap();
        assert!(
            load_config(&cfg).is_err(),
            "the full load checks the roster file"
        );
        let g = GlobalArgs {
            config: Some(cfg),
            ..GlobalArgs::default()
        };
        let Target::Unix { path, .. } = resolve_target(&g, None).unwrap() else {
            panic!("not unix")
        };
        assert_eq!(path, dir.join("data").join("tanoad.sock"));
    }

    #[tokio::test]
    async fn cannot_connect_names_the_socket_and_the_config() {
        let tmp = tempfile::tempdir().unwrap();
        let target = Target::Unix {
            path: tmp.path().join("absent.sock"),
            config: Some(tmp.path().join("tanoad.toml")),
        };
        let err = connect_to(&target).await.unwrap_err();
        let f = crate::exit::classify(&err);
        assert_eq!(f.code, crate::exit::FAILED);
        assert!(f.message.contains("absent.sock"), "{}", f.message);
        let hint = f.hint.unwrap();
        assert!(
            hint.contains(&format!(
                "tanoad --config {}",
                tmp.path().join("tanoad.toml").display()
            )),
            "{hint}"
        );
    }
}
