//! `tanoad`, the Tanoa federation daemon. All logic is in `tanoa_daemon::node::main_entry`.
//!
//! Its Rust heap is jemalloc, not glibc's malloc: sled allocates and frees on every write, and
//! with glibc the store's writer spent about 30% of its time asleep on arena locks that the
//! verification and network threads held (see the `malloc` module and ARCHITECTURE.md).

tanoa_daemon::tanoad_heap!();

fn main() -> std::process::ExitCode {
    tanoa_daemon::node::main_entry(std::env::args_os())
}

#[cfg(test)]
mod tests {
    /// jemalloc is the allocator and read `MALLOC_CONF`: its background thread (named
    /// `jemalloc_bg_thd`) runs only when `background_thread:true` was read.
    #[test]
    #[cfg(target_os = "linux")]
    fn jemalloc_runs_with_tanoads_settings() {
        let v: Vec<Vec<u8>> = (0..1000).map(|i| vec![0u8; 64 + i]).collect();
        drop(v);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let names: Vec<String> = std::fs::read_dir("/proc/self/task")
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                        .map(|s| s.trim().to_string())
                        .collect()
                })
                .unwrap_or_default();
            if names.iter().any(|n| n.starts_with("jemalloc_bg_thd")) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no jemalloc background thread among {names:?}: MALLOC_CONF not read"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(
            super::MALLOC_CONF.ends_with(b"\0"),
            "MALLOC_CONF must end in NUL"
        );
    }
}
