//! `tanoa` for the integration tests: exactly the CLI's `main_entry`.

fn main() -> std::process::ExitCode {
    tanoa_cli::main_entry(std::env::args_os())
}
