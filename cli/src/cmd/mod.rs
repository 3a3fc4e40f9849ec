//! One module per command group. Each exposes its clap `Args` and a `run` function that
//! returns `anyhow::Result<()>`; failures carry their exit code (see `crate::exit`).
//! Must never: call `std::process::exit` or print errors itself (`main` reports them).

pub mod audit;
pub mod demo;
pub mod explain;
pub mod export;
pub mod export_blocklist;
pub mod export_misp;
pub mod export_stix;
pub mod import;
pub mod import_misp;
pub mod import_stix;
pub mod init;
pub mod list;
pub mod member;
pub mod peers;
pub mod pki;
pub mod publish;
pub mod roster;
pub mod search;
pub mod show;
pub mod status;
pub mod sync;
pub mod verify;
pub mod watch;
pub mod withdraw;
