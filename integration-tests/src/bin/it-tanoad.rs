//! `tanoad` for the integration tests: exactly the daemon's `main_entry`, on the daemon's heap.

tanoa_daemon::tanoad_heap!();

fn main() -> std::process::ExitCode {
    tanoa_daemon::node::main_entry(std::env::args_os())
}
