//! glibc's malloc settings, set once when `tanoad` starts, and its periodic trim.
//!
//! Since issue 9's seventh session `tanoad`'s Rust heap is jemalloc (`src/bin/tanoad.rs`), so
//! what follows governs only what still calls glibc's malloc: C code linked in (zstd's
//! contexts) and every program that links this library without choosing an allocator (the
//! tests). Why jemalloc: sled allocates and frees on every write, and glibc makes a thread that
//! frees a block take the lock of the arena the block came from. With two arenas (below) the
//! store's single writer spent about 30% of its wall time asleep on those locks while the
//! verification and network threads allocated (`perf record -e sched:sched_switch`: 5,308 of
//! 7,334 switches inside `apply_batch` were futex waits in malloc, realloc and free); with
//! eight arenas still 27%. jemalloc's per-thread caches take most of those calls without a lock:
//! replication of 100,000 advisories went from about 4,900/s to 6,600/s, the store alone from
//! about 6,500/s to 9,700/s (federation bench). With `tanoad_heap!`'s settings the soak's
//! members hold about what they held under glibc (ws-cert 28.2 MB with 1,429 advisories).
//!
//! What the settings below are for (issue 10, measured while glibc served the whole heap):
//! glibc gives a thread that finds the heap locked an arena of its own, up to 8 per core, and
//! memory freed in one arena is reused only by that arena. The daemon's blocking-pool threads
//! come and go (store reads, TAXII conversions, sled's flusher), so every arena in turn grows to
//! the largest transient working set it has seen (a STIX bundle converted, a page of objects)
//! and keeps it: the process's RSS climbs in steps with no data added and nothing leaked. The
//! soak's probe measured it (issue 10): with the data held constant for 5 minutes under queries,
//! `Watch`, TAXII paging and a hostile peer, RSS rose 91.8 -> 99.2 MB (+8 %) in two steps with
//! glibc's default arenas, and stayed within 84.2 -> 86.6 MB with two arenas.
//!
//! Fewer arenas do not stop the heap from keeping what it freed: glibc returns memory to the OS
//! only from the top of a heap, so a heap fragmented by a large transient working set stays at
//! its high-water mark. In the 30-minute soak a member restored from empty (2,800 items fetched
//! at once) sat at 133 MB while its peers held the same data in 70; `malloc_trim(0)` called into
//! it from a debugger brought it to 94 MB (39 MB were free heap). So `tanoad` also trims the
//! heap every `TRIM_EVERY` (a few ms with two arenas). Between two trims the RSS holds the
//! largest transient working set since the last one; the soak saw the heap swing 4-5 MB above
//! its floor within every 30 s, so the trim runs every 10 s rather than once a minute.
//!
//! glibc also raises its mmap threshold (up to 32 MiB) each time a large mmapped block is freed,
//! so after the first large transient buffer (a Fetch answer, a STIX bundle, a page of TAXII
//! objects) every later one is carved from the heap, where its pages stay until a trim. `tanoad`
//! pins the threshold at `MMAP_THRESHOLD` (256 KiB): larger blocks are always mapped and go
//! back to the OS the moment they are freed.
//!
//! Owns: the arena limit (`MALLOC_ARENAS`, unless the operator set `MALLOC_ARENA_MAX` in the
//! environment: glibc reads it itself and this module leaves the limit alone), the mmap
//! threshold (`MMAP_THRESHOLD`, unless `MALLOC_MMAP_THRESHOLD_` is set) and the periodic
//! trim.
//! Must never: set the limit or the threshold anywhere but at the start of `main_entry`, trim on an async worker
//! thread (it takes the arenas' locks: `spawn_blocking`), or act on other C libraries.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often `tanoad` hands free heap pages back to the OS.
pub(crate) const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Blocks of this size or more are mapped on their own (glibc's `M_MMAP_THRESHOLD`, pinned so
/// that glibc does not raise it).
pub(crate) const MMAP_THRESHOLD: i32 = 256 * 1024;

/// glibc malloc arenas `tanoad` allows when `MALLOC_ARENA_MAX` is not set.
pub(crate) const MALLOC_ARENAS: i32 = 2;

/// Sets glibc's malloc parameter `param` to `value` unless the environment variable `env` (the
/// operator's own setting, which glibc reads itself) is set. Returns the value it set.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn mallopt_unless_set(env: &str, param: i32, value: i32) -> Option<i32> {
    if std::env::var_os(env).is_some() {
        return None;
    }
    // SAFETY: mallopt(3) takes two integers and no pointers. The parameters set here
    // (M_ARENA_MAX, M_MMAP_THRESHOLD) only change how later allocations are served (blocks
    // already allocated keep where they live), which is valid at any time and from any thread.
    let ok = unsafe { libc::mallopt(param, value) };
    (ok == 1).then_some(value)
}

/// Limits glibc's malloc arenas to `MALLOC_ARENAS` unless `MALLOC_ARENA_MAX` is set. Returns
/// the limit it set, `None` when it left the allocator alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn limit_arenas() -> Option<i32> {
    mallopt_unless_set("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, MALLOC_ARENAS)
}

/// Other C libraries: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn limit_arenas() -> Option<i32> {
    None
}

/// Pins glibc's mmap threshold at `MMAP_THRESHOLD` unless `MALLOC_MMAP_THRESHOLD_` is set.
/// Returns the threshold it set, `None` when it left the allocator alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn pin_mmap_threshold() -> Option<i32> {
    mallopt_unless_set(
        "MALLOC_MMAP_THRESHOLD_",
        libc::M_MMAP_THRESHOLD,
        MMAP_THRESHOLD,
    )
}

/// Other C libraries: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn pin_mmap_threshold() -> Option<i32> {
    None
}

/// Returns free heap pages to the OS (`malloc_trim(0)`); `true` if some were released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn trim() -> bool {
    // SAFETY: malloc_trim(3) takes a size and no pointers; glibc takes each arena's lock while
    // it releases that arena's free pages, so it is safe beside any allocation in progress.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other C libraries: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn trim() -> bool {
    false
}

/// Trims the heap every `every` until `cancel`.
pub(crate) async fn trim_every(every: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn arenas_are_limited_unless_the_environment_says_otherwise() {
        let expected = if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            None
        } else {
            Some(super::MALLOC_ARENAS)
        };
        assert_eq!(super::limit_arenas(), expected);
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn the_mmap_threshold_is_pinned_unless_the_environment_says_otherwise() {
        let expected = if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
            None
        } else {
            Some(super::MMAP_THRESHOLD)
        };
        assert_eq!(super::pin_mmap_threshold(), expected);
    }

    /// Bytes glibc holds in mmapped blocks, process-wide.
    #[allow(unsafe_code)]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn mapped_bytes() -> usize {
        // SAFETY: mallinfo2(3) takes no arguments and returns a plain struct by value.
        unsafe { libc::mallinfo2() }.hblkhd
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn a_large_block_is_mapped_even_after_a_larger_one_was_freed() {
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
            return;
        }
        let _ = super::pin_mmap_threshold();
        // Unpinned, freeing a 4 MiB mapped block raises glibc's threshold to 4 MiB, and the
        // 1 MiB block after it comes from the heap. Other tests of this process allocate in
        // parallel, so a few attempts are allowed; one clean observation is enough.
        let seen = (0..5).any(|_| {
            drop(std::hint::black_box(vec![1u8; 4 << 20]));
            let before = mapped_bytes();
            let block = std::hint::black_box(vec![2u8; 1 << 20]);
            let after = mapped_bytes();
            drop(block);
            after >= before + (1 << 20)
        });
        assert!(seen, "a 1 MiB block was not mapped on its own");
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn trimming_after_freeing_a_fragmented_heap_releases_pages() {
        // Many 64 kB blocks (below the mmap threshold, so on the heap), every other one freed,
        // and one kept at the end so the heap top cannot shrink: only a trim returns the holes.
        let mut blocks: Vec<Vec<u8>> = (0..400).map(|_| vec![7u8; 64 * 1024]).collect();
        let keep = blocks.pop();
        for b in blocks.iter_mut().step_by(2) {
            *b = Vec::new();
        }
        assert!(super::trim(), "malloc_trim released nothing");
        assert!(keep.is_some_and(|k| k.len() == 64 * 1024));
        assert_eq!(blocks.iter().filter(|b| b.is_empty()).count(), 200);
    }
}
