//! Keeping the C allocator from returning a training step's memory to the kernel.
//!
//! A training step allocates and frees hundreds of tensors of a few megabytes each. glibc's
//! `malloc` serves blocks above its mmap threshold (128 KiB at first, raised dynamically up to
//! 32 MiB) with fresh `mmap`s and gives them back with `munmap` when freed, so every step pays
//! for page faults, zeroing and TLB shoot-downs on the same few hundred megabytes. On the 2-core
//! development machine that was about a quarter of a step of the `small` preset (see
//! `docs/benchmarks/amun-kernels.md`).

/// Largest block glibc serves from its heaps when asked (`DEFAULT_MMAP_THRESHOLD_MAX` on 64-bit
/// targets); bigger requests are always mapped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Blocks larger than the threshold are not mapped either: `M_MMAP_MAX` 0 makes the main
/// thread's heap serve them too, where freed blocks are reused. Whole-scene inference makes
/// tensors of 64 MB and more (16 channels of a 1000² window); mapped afresh each time, every
/// page of every tensor was a page fault: 5.3 million faults and 11 s of system time for a
/// 2048² scene against 0.25 million and 0.7 s from the heap (commit b8e718c; to be measured
/// again, `docs/benchmarks/amun-net.md`).
/// Other threads' arenas still map what their heaps cannot hold.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_MAX: libc::c_int = 0;

/// Free memory at the top of a heap that glibc keeps instead of trimming (1 GiB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 1 << 30;

/// Tunes the process's allocator for training: on Linux with glibc, blocks up to 32 MiB come
/// from `malloc`'s heaps and up to 1 GiB of freed memory is kept for reuse instead of being
/// returned to the kernel after every step. Elsewhere (macOS, Windows, musl) it does nothing and
/// returns `false`.
///
/// The setting is process-wide and changes how the C allocator behaves for everything in the
/// process, so a library never calls it on its own: call it once at the start of `main`, before
/// other threads start, in a program that trains or runs AMUN (the `amun` command does). The
/// cost is memory: the process's resident size stays near its peak instead of shrinking
/// between steps. A program with its own global allocator (`mimalloc`, `jemalloc`) does not
/// need it.
///
/// Blocks above 32 MiB (large inference windows) come from the main heap as well, instead of
/// fresh mappings whose every page faults on first touch.
///
/// Returns whether all settings were accepted.
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes three of glibc's allocator parameters; it is safe to
        // call at any time (glibc takes its arena lock), and the values are within the ranges
        // glibc documents for them.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
                && libc::mallopt(libc::M_MMAP_MAX, MMAP_MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_the_settings() {
        // Both values are inside the ranges glibc accepts; a rejected one would make the
        // speed-up silently disappear.
        let accepted = super::tune_allocator();
        assert_eq!(accepted, cfg!(all(target_os = "linux", target_env = "gnu")));
    }
}
