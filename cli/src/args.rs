//! The command-line grammar: global options, the command list, and value parsers
//! (`--since 24h`, `--tlp amber+strict`, `--kind sha256`).
//!
//! Owns: what `tanoa` accepts and its `--help` text.
//! Must never: do I/O; parsing a value never touches the daemon or the file system.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tanoa_daemon::model::{IndicatorKind, Tlp};

use crate::cmd;
use crate::exit::EXIT_CODES_HELP;

/// Operator command line of a Tanoa node (tanoad): publish, search, withdraw and verify signed
/// threat advisories shared between national CERTs.
#[derive(Debug, Parser)]
#[command(name = "tanoa", version, after_help = EXIT_CODES_HELP, max_term_width = 100)]
pub struct Cli {
    /// Options that apply to every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every command (before or after the command name).
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Print machine-readable JSON on stdout (one document; one line per event for `watch`).
    #[arg(long, global = true)]
    pub json: bool,
    /// Operator socket of tanoad (default: the one named in the config).
    #[arg(long, global = true, env = "TANOA_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// tanoad config file to read the operator socket from [default: $TANOA_HOME/tanoad.toml,
    /// TANOA_HOME defaults to ./.tanoa].
    #[arg(long, global = true, env = "TANOA_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Operator TCP listener with mutual TLS, e.g. https://127.0.0.1:7443 (needs --ca, --cert,
    /// --key).
    #[arg(long, global = true, value_name = "URL", requires_all = ["ca", "cert", "key"])]
    pub endpoint: Option<String>,
    /// CA certificate (PEM) that issued tanoad's operator-listener certificate. For
    /// `pki issue`: the PKI directory holding ca.pem and ca.key.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Operator client certificate (PEM, URI SAN tanoa://operator/<name>) for --endpoint.
    #[arg(long, global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up a new member: signing key (0600), tanoad.toml and data directory.
    Init(cmd::init::InitArgs),
    /// Publish an advisory file (JSON or TOML); prints its item id, advisory id and revision.
    Publish(cmd::publish::PublishArgs),
    /// List advisories held (latest revision of each), newest first.
    List(cmd::list::ListArgs),
    /// Show one advisory: content, signature check, history, equivocation evidence.
    Show(cmd::show::ShowArgs),
    /// Find active advisories holding an indicator (exact value, or an IP inside a CIDR).
    Search(cmd::search::SearchArgs),
    /// Withdraw an advisory of ours with a signed tombstone.
    Withdraw(cmd::withdraw::WithdrawArgs),
    /// Stream new, updated and withdrawn advisories until Ctrl-C.
    Watch,
    /// Node status: member, federation health, keys, counts, store size, uptime, version.
    Status,
    /// Federation peers: link, last successful sync, traffic, rejections by reason, backlog.
    Peers,
    /// Would this node send ADVISORY to PEER, and why (or why not): TLP, audience, origin rule,
    /// link. Exit 0 either way.
    Explain(cmd::explain::ExplainArgs),
    /// Replication: `sync now [PEER]` starts a reconciliation at once.
    #[command(subcommand)]
    Sync(cmd::sync::SyncCommand),
    /// Re-read tanoad.toml and the TLS files now (as SIGHUP): prints what was applied and which
    /// changed settings need a restart.
    Reload,
    /// A new member's side of joining: `member request` writes a signed join request.
    #[command(subcommand)]
    Member(cmd::member::MemberCommand),
    /// The signed roster: init, sign, hash, propose, approve, show, history, diff.
    #[command(subcommand)]
    Roster(cmd::roster::RosterCommand),
    /// Recent audit-log entries, newest first.
    Audit(cmd::audit::AuditArgs),
    /// Export an advisory's signed envelope as JSON (for `tanoa verify` or `tanoa import`).
    Export(cmd::export::ExportArgs),
    /// Import an exported envelope into the daemon (verified and stored like a peer's).
    Import(cmd::import::ImportArgs),
    /// Verify an exported envelope OFFLINE against a public key (no daemon needed).
    Verify(cmd::verify::VerifyArgs),
    /// Federation PKI: CA, member and operator certificates.
    #[command(subcommand)]
    Pki(cmd::pki::PkiCommand),
    /// Run a local federation of five Pacific CERT daemons in this process (dev PKI, signed
    /// roster), publish a GREEN and an AMBER advisory, let a sixth member (ck-cert) join by two
    /// approvals, and show live who holds what.
    Demo(cmd::demo::DemoArgs),
}

/// A `--since` value: a moment, or a duration back from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// This Unix ms.
    At(i64),
    /// This many ms before now.
    Ago(i64),
}

impl Since {
    /// The Unix ms it designates, relative to `now_ms`.
    pub fn resolve(self, now_ms: i64) -> i64 {
        match self {
            Since::At(ms) => ms,
            Since::Ago(d) => now_ms.saturating_sub(d),
        }
    }
}

/// Parses `--since`: RFC 3339 (`2026-03-01T00:00:00Z`), a date (`2026-03-01`, midnight UTC), or
/// a duration back from now (`90s`, `30m`, `24h`, `7d`, `2w`).
pub fn parse_since(s: &str) -> Result<Since, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&i| i > 0)
        .map(|i| t.split_at(i));
    if let Some((Ok(n), unit)) = split.map(|(num, unit)| (num.parse::<i64>(), unit)) {
        let unit_ms: Option<i64> = match unit {
            "s" => Some(1_000),
            "m" | "min" => Some(60_000),
            "h" => Some(3_600_000),
            "d" => Some(86_400_000),
            "w" => Some(7 * 86_400_000),
            _ => None,
        };
        if let Some(u) = unit_ms {
            return n
                .checked_mul(u)
                .map(Since::Ago)
                .ok_or_else(|| format!("{s:?} is too long ago"));
        }
    }
    if t.len() == 10 && t.as_bytes().get(4) == Some(&b'-') {
        return tanoa_daemon::config::parse_rfc3339_ms(&format!("{t}T00:00:00Z"))
            .map(Since::At)
            .map_err(|_| format!("{s:?} is not a date such as 2026-03-01"));
    }
    tanoa_daemon::config::parse_rfc3339_ms(t)
        .map(Since::At)
        .map_err(|_| {
            format!(
                "{s:?} is neither a duration (90s, 30m, 24h, 7d, 2w), a date (2026-03-01) \
             nor an RFC 3339 time (2026-03-01T09:30:00Z)"
            )
        })
}

/// Parses a TLP label (`clear`, `green`, `amber`, `amber+strict`, `red`, `TLP:` prefix allowed).
pub fn parse_tlp(s: &str) -> Result<Tlp, String> {
    Tlp::parse(s).ok_or_else(|| {
        format!("{s:?} is not a TLP label: use CLEAR, GREEN, AMBER, AMBER+STRICT or RED")
    })
}

/// Indicator kind names, as in advisory files.
pub const KIND_NAMES: &str =
    "ipv4, ipv6, cidr, domain, url, email, md5, sha1, sha256, sha512, cve, filename, asn";

/// Parses an indicator kind name (case-insensitive).
pub fn parse_kind(s: &str) -> Result<IndicatorKind, String> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_ascii_lowercase()))
        .map_err(|_| format!("{s:?} is not an indicator kind: use one of {KIND_NAMES}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tanoa").chain(args.iter().copied()))
    }

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn since_accepts_durations_dates_and_rfc3339() {
        assert_eq!(parse_since("24h"), Ok(Since::Ago(24 * 3_600_000)));
        assert_eq!(parse_since("90s"), Ok(Since::Ago(90_000)));
        assert_eq!(parse_since("30m"), Ok(Since::Ago(1_800_000)));
        assert_eq!(parse_since("7d"), Ok(Since::Ago(7 * 86_400_000)));
        assert_eq!(parse_since("2w"), Ok(Since::Ago(14 * 86_400_000)));
        assert_eq!(
            parse_since("2026-01-01T00:00:00Z"),
            Ok(Since::At(1_767_225_600_000))
        );
        assert_eq!(parse_since("2026-01-01"), Ok(Since::At(1_767_225_600_000)));
        assert_eq!(
            parse_since("2026-01-01T10:00:00+10:00"),
            Ok(Since::At(1_767_225_600_000))
        );
        for bad in ["", "24", "h", "24y", "yesterday", "2026-13-01", "-5h"] {
            assert!(parse_since(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Since::Ago(1000).resolve(5000), 4000);
        assert_eq!(Since::At(7).resolve(5000), 7);
    }

    #[test]
    fn tlp_and_kind_parse_case_insensitively() {
        assert_eq!(parse_tlp("amber+strict"), Ok(Tlp::AmberStrict));
        assert_eq!(parse_tlp("TLP:RED"), Ok(Tlp::Red));
        assert!(parse_tlp("purple").unwrap_err().contains("AMBER+STRICT"));
        assert_eq!(parse_kind("SHA256"), Ok(IndicatorKind::Sha256));
        assert_eq!(parse_kind("cidr"), Ok(IndicatorKind::Cidr));
        assert!(parse_kind("ipv5").unwrap_err().contains("filename"));
    }

    #[test]
    fn list_flags_parse() {
        let cli = parse(&[
            "list",
            "--origin",
            "ws-cert",
            "--tlp",
            "green",
            "--since",
            "24h",
            "--text",
            "apt40",
            "--withdrawn",
            "--limit",
            "5",
            "--json",
        ])
        .unwrap();
        assert!(cli.global.json);
        let Command::List(a) = cli.command else {
            panic!("not list")
        };
        assert_eq!(a.origin.as_deref(), Some("ws-cert"));
        assert_eq!(a.tlp, Some(Tlp::Green));
        assert_eq!(a.since, Some(Since::Ago(86_400_000)));
        assert_eq!(a.text.as_deref(), Some("apt40"));
        assert!(a.withdrawn);
        assert_eq!(a.limit, 5);
        assert!(parse(&["list", "--since", "soon"]).is_err());
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let cli = parse(&["--socket", "/tmp/x.sock", "status"]).unwrap();
        assert_eq!(cli.global.socket, Some(PathBuf::from("/tmp/x.sock")));
        let cli = parse(&["status", "--socket", "/tmp/y.sock", "--json"]).unwrap();
        assert_eq!(cli.global.socket, Some(PathBuf::from("/tmp/y.sock")));
        assert!(cli.global.json);
        let cli = parse(&["--config", "c.toml", "show", "ws-2026-0001"]).unwrap();
        assert_eq!(cli.global.config, Some(PathBuf::from("c.toml")));
    }

    #[test]
    fn endpoint_requires_tls_files() {
        let err = parse(&["--endpoint", "https://127.0.0.1:7443", "status"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let cli = parse(&[
            "--endpoint",
            "https://127.0.0.1:7443",
            "--ca",
            "ca.pem",
            "--cert",
            "op.pem",
            "--key",
            "op.key",
            "status",
        ])
        .unwrap();
        assert_eq!(
            cli.global.endpoint.as_deref(),
            Some("https://127.0.0.1:7443")
        );
    }

    #[test]
    fn commands_parse_with_their_flags() {
        let cli = parse(&["withdraw", "ws-2026-0001", "--reason", "false positive"]).unwrap();
        assert!(matches!(cli.command, Command::Withdraw(ref a) if a.reason == "false positive"));
        assert!(
            parse(&["withdraw", "ws-2026-0001"]).is_err(),
            "--reason is required"
        );
        let cli = parse(&["search", "192.0.2.7", "--kind", "ipv4"]).unwrap();
        assert!(
            matches!(cli.command, Command::Search(ref a) if a.kind == Some(IndicatorKind::Ipv4))
        );
        let cli = parse(&["verify", "env.json", "--public-key", "ab"]).unwrap();
        assert!(matches!(cli.command, Command::Verify(_)));
        assert!(
            parse(&["verify", "env.json"]).is_err(),
            "--public-key is required"
        );
        let cli = parse(&["export", "x", "--format", "envelope", "-o", "out.json"]).unwrap();
        assert!(
            matches!(cli.command, Command::Export(ref a) if a.output == Some(PathBuf::from("out.json")))
        );
        assert!(parse(&["export", "x", "--format", "pdf"]).is_err());
        let cli = parse(&["export", "--format", "zeek", "--kind", "ipv4,domain"]).unwrap();
        assert!(matches!(cli.command, Command::Export(ref a)
            if a.ids.is_empty() && a.kinds == [IndicatorKind::Ipv4, IndicatorKind::Domain]));
        let cli = parse(&[
            "init",
            "--dir",
            "d",
            "--id",
            "ws-cert",
            "--name",
            "Samoa CERT",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Init(ref a) if a.id == "ws-cert"));
        let cli = parse(&["audit", "--limit", "3"]).unwrap();
        assert!(matches!(cli.command, Command::Audit(ref a) if a.limit == 3));
        let cli = parse(&["demo", "--once", "--dir", "/tmp/d"]).unwrap();
        assert!(matches!(cli.command, Command::Demo(ref a) if a.once));
        let cli = parse(&["demo"]).unwrap();
        assert!(matches!(cli.command, Command::Demo(ref a) if !a.once && a.timeout == 60));
        let cli = parse(&["--json", "demo", "--once", "--timeout", "20"]).unwrap();
        assert!(matches!(cli.command, Command::Demo(ref a) if a.timeout == 20));
        assert!(parse(&["demo", "--timeout", "0"]).is_err());
        assert!(matches!(parse(&["watch"]).unwrap().command, Command::Watch));
        assert!(parse(&["frobnicate"]).is_err());
    }

    #[test]
    fn federation_commands_parse() {
        assert!(matches!(parse(&["peers"]).unwrap().command, Command::Peers));
        assert!(parse(&["peers", "--json"]).unwrap().global.json);
        let cli = parse(&["explain", "ws-cert/apt40-blue-pacific", "to-cert"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Explain(ref a) if a.id == "ws-cert/apt40-blue-pacific" && a.peer == "to-cert"
        ));
        assert!(
            parse(&["explain", "ws-cert/apt40-blue-pacific"]).is_err(),
            "PEER is required"
        );
        let cli = parse(&["sync", "now"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Sync(cmd::sync::SyncCommand::Now(ref a)) if a.peer.is_none()
        ));
        let cli = parse(&["sync", "now", "fj-cert", "--socket", "/tmp/s"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Sync(cmd::sync::SyncCommand::Now(ref a)) if a.peer.as_deref() == Some("fj-cert")
        ));
        assert!(parse(&["sync"]).is_err(), "sync needs a subcommand");
        assert!(parse(&["sync", "later"]).is_err());
    }

    #[test]
    fn pki_commands_parse() {
        let cli = parse(&[
            "pki",
            "init",
            "--out",
            "certs/dev",
            "--members",
            "ws-cert,fj-cert",
            "--operators",
            "alice",
            "--days",
            "30",
            "--negative",
        ])
        .unwrap();
        let Command::Pki(cmd::pki::PkiCommand::Init(a)) = cli.command else {
            panic!("not pki init")
        };
        assert_eq!(
            a.members,
            vec!["ws-cert".to_string(), "fj-cert".to_string()]
        );
        assert_eq!(a.operators, vec!["alice".to_string()]);
        assert_eq!(a.days, 30);
        assert!(a.negative);
        let cli = parse(&[
            "pki",
            "issue",
            "--ca",
            "certs/dev",
            "--member",
            "to-cert",
            "--out",
            "o",
        ])
        .unwrap();
        assert_eq!(cli.global.ca, Some(PathBuf::from("certs/dev")));
        assert!(matches!(
            cli.command,
            Command::Pki(cmd::pki::PkiCommand::Issue(ref a)) if a.member.as_deref() == Some("to-cert")
        ));
        assert!(
            parse(&[
                "pki",
                "issue",
                "--ca",
                "d",
                "--member",
                "a",
                "--operator",
                "b",
                "--out",
                "o"
            ])
            .is_err(),
            "--member and --operator are exclusive"
        );
        assert!(parse(&["pki", "issue", "--ca", "d", "--out", "o"]).is_err());
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"));
        assert!(help.contains("2  bad usage or bad input file"));
    }
}
