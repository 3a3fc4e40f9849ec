//! `tanoad`, the Tanoa federation daemon. All logic is in `tanoa_daemon::node::main_entry`.

fn main() -> std::process::ExitCode {
    tanoa_daemon::node::main_entry(std::env::args_os())
}
