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
//! Owns: the arena limit: `MALLOC_ARENAS`, unless the operator set `MALLOC_ARENA_MAX` in the
//! environment (glibc reads it itself; this module then does nothing).
//! Must never: run anywhere but at the start of `main_entry`, or act on other C libraries.

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
}
