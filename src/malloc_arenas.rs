//! How many malloc arenas glibc may keep for the process.
//!
//! glibc gives a thread its own arena, up to eight per core, the first time it allocates. A
//! worker has about 40 threads (librdkafka's, the async runtime's, the evaluation pool's), and
//! every arena keeps its own free memory: on this project's 2-core machine the idle leader
//! tutorial held 11 arenas and 0.8 MiB more anonymous memory than with two (measured as
//! `bench/idle.sh` does, README "Idle cost"), with no change in `bench/pipeline.sh`'s events/s or peak RSS. Small allocations mostly
//! never reach an arena's lock anyway: glibc's per-thread cache serves them.

/// The arena cap faust-rs sets: one per core, at least 2 and at most 8 — or `None` when the
/// operator chose already, through `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES`'s
/// `glibc.malloc.arena_max`, whose choice stands.
pub fn cap(
    cores: usize,
    arena_max_env: Option<&str>,
    glibc_tunables_env: Option<&str>,
) -> Option<usize> {
    let chosen_by_operator = arena_max_env.is_some_and(|value| !value.is_empty())
        || glibc_tunables_env.is_some_and(|value| value.contains("glibc.malloc.arena_max"));
    (!chosen_by_operator).then_some(cores.clamp(2, 8))
}

/// Applies [`cap`] to this process. Call it first thing in `main`: arenas made before it stay.
pub fn limit() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let arena_max = std::env::var("MALLOC_ARENA_MAX").ok();
    let tunables = std::env::var("GLIBC_TUNABLES").ok();
    if let Some(arenas) = cap(cores, arena_max.as_deref(), tunables.as_deref()) {
        set_arena_max(arenas);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(arenas: usize) {
    let arenas = libc::c_int::try_from(arenas).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets a malloc parameter; M_ARENA_MAX takes any positive count.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: usize) {}

#[cfg(test)]
mod tests {
    use super::cap;

    #[test]
    fn one_arena_per_core_within_two_and_eight() {
        assert_eq!(cap(1, None, None), Some(2));
        assert_eq!(cap(2, None, None), Some(2));
        assert_eq!(cap(6, None, None), Some(6));
        assert_eq!(cap(64, None, None), Some(8));
    }

    #[test]
    fn the_operators_choice_stands() {
        assert_eq!(cap(2, Some("16"), None), None);
        assert_eq!(
            cap(
                2,
                None,
                Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=4")
            ),
            None
        );
    }

    #[test]
    fn unrelated_or_empty_settings_leave_the_cap() {
        assert_eq!(cap(2, Some(""), None), Some(2));
        assert_eq!(cap(4, None, Some("glibc.malloc.tcache_count=0")), Some(4));
    }
}
