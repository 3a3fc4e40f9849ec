//! The `tanoa` binary: a thin wrapper over `tanoa_cli::main_entry`.

fn main() -> std::process::ExitCode {
    tanoa_cli::main_entry(std::env::args_os())
}
