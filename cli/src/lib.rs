//! `tanoa`: the operator command line of a Tanoa node.
//!
//! Owns: the command-line grammar (clap), the tokio runtime, and turning every outcome into an
//! exit code (see `exit`). One module per command group under `cmd/`.
//! Must never: sign or store anything itself (the daemon does, through the operator API), or
//! prompt for input: every command runs non-interactively, and `--json` makes its output
//! machine-readable.

/// `println!` that ends the process quietly (exit 0) when stdout is a closed pipe
/// (`tanoa --json list | head`), instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod args;
mod cmd;
mod connect;
mod envfile;
mod exit;
mod outfile;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => cmd::init::run(a, g),
        Command::Publish(a) => cmd::publish::run(a, g).await,
        Command::List(a) => cmd::list::run(a, g).await,
        Command::Show(a) => cmd::show::run(a, g).await,
        Command::Search(a) => cmd::search::run(a, g).await,
        Command::Withdraw(a) => cmd::withdraw::run(a, g).await,
        Command::Watch => cmd::watch::run(g).await,
        Command::Status => cmd::status::run(g).await,
        Command::Peers => cmd::peers::run(g).await,
        Command::Explain(a) => cmd::explain::run(a, g).await,
        Command::Sync(c) => cmd::sync::run(c, g).await,
        Command::Reload => cmd::sync::reload(g).await,
        Command::Member(c) => cmd::member::run(c, g),
        Command::Roster(c) => cmd::roster::run(c, g).await,
        Command::Audit(a) => cmd::audit::run(a, g).await,
        Command::Export(a) => cmd::export::run(a, g).await,
        Command::Import(a) => cmd::import::run(a, g).await,
        Command::Verify(a) => cmd::verify::run(a, g),
        Command::Pki(a) => cmd::pki::run(a, g),
        Command::Demo(a) => cmd::demo::run(a, g).await,
    }
}

/// Runs the `tanoa` command line with these arguments (the first is the program name) and
/// returns its exit code. The `tanoa` binary and the integration tests' copy both call this.
pub fn main_entry<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            exit::report(&exit::Failure::failed(format!(
                "cannot start the async runtime: {e}"
            )));
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let f = exit::classify(&e);
            if !f.message.is_empty() {
                exit::report(&f);
            }
            ExitCode::from(f.code)
        }
    }
}
