//! The C allocator's arena count, set once when `tanoad` starts.
//!
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
//! heap every `TRIM_EVERY` (a few ms with two arenas).
//!
//! Owns: the arena limit (`MALLOC_ARENAS`, unless the operator set `MALLOC_ARENA_MAX` in the
//! environment: glibc reads it itself and this module leaves the limit alone) and the periodic
//! trim.
//! Must never: set the limit anywhere but at the start of `main_entry`, trim on an async worker
//! thread (it takes the arenas' locks: `spawn_blocking`), or act on other C libraries.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often `tanoad` hands free heap pages back to the OS.
pub(crate) const TRIM_EVERY: Duration = Duration::from_secs(60);

/// glibc malloc arenas `tanoad` allows when `MALLOC_ARENA_MAX` is not set.
pub(crate) const MALLOC_ARENAS: i32 = 2;

/// Limits glibc's malloc arenas to `MALLOC_ARENAS` unless `MALLOC_ARENA_MAX` is set. Returns
/// the limit it set, `None` when it left the allocator alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn limit_arenas() -> Option<i32> {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return None;
    }
    // SAFETY: mallopt(3) takes two integers and no pointers; M_ARENA_MAX only bounds how many
    // arenas glibc creates from now on, which is valid at any time and from any thread.
    let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) };
    (ok == 1).then_some(MALLOC_ARENAS)
}

/// Other C libraries: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn limit_arenas() -> Option<i32> {
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
