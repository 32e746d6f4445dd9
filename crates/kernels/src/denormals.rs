//! Flushing subnormal floats to zero on the threads that run the network.
//!
//! x86-64 processors handle a subnormal operand or result (an `f32` below 2⁻¹²⁶ ≈ 1.18e-38 in
//! magnitude) through a microcode assist that costs on the order of a hundred cycles, so a
//! trained network whose weights have decayed into that range pays it on a large share of its
//! multiply-adds. Two bits of the MXCSR register, which governs the SSE and AVX units of one
//! thread, avoid it: flush-to-zero (FTZ, bit 15) makes a subnormal result zero and
//! denormals-are-zero (DAZ, bit 6) reads a subnormal operand as zero. PyTorch's
//! `torch.set_flush_denormal(True)` sets the same two bits.
//!
//! MXCSR belongs to a thread, so the bits are set on the calling thread and on every thread of
//! rayon's global pool, where this crate's kernels, candle's CPU operators and the `gemm`
//! crate's parallel products all run (candle 0.11's own private pool and barrier pool serve
//! only `Device::with_context` and quantised matmuls, which amun does not use).

/// Flush-to-zero: subnormal results become zero (MXCSR bit 15).
#[cfg(target_arch = "x86_64")]
const FTZ: u32 = 1 << 15;

/// Denormals-are-zero: subnormal operands are read as zero (MXCSR bit 6).
#[cfg(target_arch = "x86_64")]
const DAZ: u32 = 1 << 6;

/// Makes subnormal `f32`/`f64` values count as zero in the arithmetic of the calling thread
/// and of every thread of rayon's global pool (the threads that run this crate's kernels and
/// candle's CPU operators): on x86-64 it sets the flush-to-zero and denormals-are-zero bits of
/// each thread's MXCSR register. Elsewhere it does nothing and returns `false`.
///
/// What it does to floating point: any operation whose exact result is smaller in magnitude
/// than the smallest normal number (`f32::MIN_POSITIVE`, about 1.18e-38; `f64::MIN_POSITIVE`
/// for `f64`) gives zero (of the same sign) instead of a subnormal, and subnormal inputs are
/// read as zero. Results that involve no subnormal value are unchanged, bit for bit. A
/// trained checkpoint that holds subnormal weights gives outputs that differ from the exact
/// ones by those weights' contributions (each below 1.2e-38 times an activation), and runs at
/// the speed of one without them: subnormal arithmetic takes a microcode assist on x86
/// processors (`docs/benchmarks/amun-kernels.md` has the measurement).
///
/// The setting is process-wide in effect and a library never makes it on its own: call it
/// once at the start of `main`, in a program that trains or runs AMUN (the `amun` command
/// does). If rayon's global pool is not built yet, it is built here, with rayon's default
/// thread count and a start handler that sets the bits on each new thread; if it is, the bits
/// are set on each of its threads now (they must be idle: do not call it from inside a rayon
/// task). Threads started in other ways (a private `rayon::ThreadPool`, `std::thread::spawn`)
/// keep their own setting; calling this function on such a thread sets it there too.
///
/// Rust's own documentation counts changing these bits as outside the language's model of
/// floating point (the compiler assumes the default environment: a product it evaluates at
/// compile time keeps a subnormal that the same product at run time flushes). Nothing in this
/// crate depends on subnormal results, and no index or length is computed in floating point.
///
/// Returns whether the bits were set.
pub fn flush_denormals() -> bool {
    if !flush_this_thread() {
        return false;
    }
    let fresh = rayon::ThreadPoolBuilder::new()
        .start_handler(|_| {
            flush_this_thread();
        })
        .build_global()
        .is_ok();
    if !fresh {
        rayon::broadcast(|_| {
            flush_this_thread();
        });
    }
    true
}

/// Whether the calling thread counts subnormals as zero: both bits set by
/// [`flush_denormals`] are set in its MXCSR register (always `false` off x86-64).
pub fn denormals_flushed() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        read_mxcsr() & (FTZ | DAZ) == FTZ | DAZ
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Sets FTZ and DAZ in the calling thread's MXCSR; `false` off x86-64, where nothing is set.
fn flush_this_thread() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let mut slot = 0u32;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR into `slot`, a live, aligned `u32` owned
        // by this frame and passed as the operand's pointer; `or` sets two bits of it and
        // `ldmxcsr` loads it back. Bits 15 and 6 are valid MXCSR bits on every x86-64
        // processor (DAZ since the Pentium 4, whose SSE2 the x86-64 baseline includes), so
        // `ldmxcsr` cannot fault; the exception masks are left as they are, so no
        // floating-point exception is unmasked. The block touches no other memory and no
        // register besides the two named operands and the flags (no `preserves_flags`). The
        // change affects only the values of floating-point results that are subnormal (see
        // `flush_denormals`), never control flow or memory safety in this crate.
        unsafe {
            std::arch::asm!(
                "stmxcsr [{slot}]",
                "or dword ptr [{slot}], {bits:e}",
                "ldmxcsr [{slot}]",
                slot = in(reg) &mut slot as *mut u32,
                bits = in(reg) FTZ | DAZ,
                options(nostack),
            );
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The calling thread's MXCSR register.
#[cfg(target_arch = "x86_64")]
fn read_mxcsr() -> u32 {
    let mut csr = 0u32;
    // SAFETY: `stmxcsr` only stores MXCSR into `csr`, a live, aligned `u32` of this frame
    // passed as the operand's pointer; it changes no register.
    unsafe {
        std::arch::asm!(
            "stmxcsr [{p}]",
            p = in(reg) &mut csr as *mut u32,
            options(nostack, preserves_flags),
        );
    }
    csr
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use std::hint::black_box;

    use super::*;

    /// 1e-20 · 1e-20 = 1e-40 and 1e-40 · 1: subnormal in `f32` (below 2⁻¹²⁶ ≈ 1.18e-38), so
    /// both are zero under FTZ and DAZ and about 1e-40 otherwise; and a normal product, which
    /// must be unchanged. Computed at run time (`black_box`), not folded by the compiler.
    fn products() -> [f32; 3] {
        [
            black_box(1e-20f32) * black_box(1e-20f32),
            black_box(1e-40f32) * black_box(1.0f32),
            black_box(1.5e-19f32) * black_box(2e-19f32),
        ]
    }

    /// Whether the products are those of a flushing thread, and the normal one exact.
    fn flushes(p: [f32; 3]) -> bool {
        // The product of two `f32` is exact in `f64`, so this rounds it once, as IEEE does.
        let exact = (f64::from(1.5e-19f32) * f64::from(2e-19f32)) as f32;
        assert_eq!(p[2].to_bits(), exact.to_bits(), "a normal product changed");
        p[0].to_bits() == 0 && p[1].to_bits() == 0
    }

    #[test]
    fn a_pool_built_with_the_start_handler_flushes_on_every_thread() {
        // A private pool of three threads, spawned by this (unflushed) test thread.
        let plain = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let before = plain.broadcast(|_| (denormals_flushed(), flushes(products())));
        assert_eq!(before, vec![(false, false); 3], "control: default MXCSR");
        plain.broadcast(|_| flush_this_thread());
        let after = plain.broadcast(|_| (denormals_flushed(), flushes(products())));
        assert_eq!(after, vec![(true, true); 3]);

        let handled = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .start_handler(|_| {
                flush_this_thread();
            })
            .build()
            .unwrap();
        let state = handled.broadcast(|_| (denormals_flushed(), flushes(products())));
        assert_eq!(state, vec![(true, true); 3]);
    }

    #[test]
    fn flush_denormals_sets_the_calling_thread_and_the_global_pool() {
        // libtest runs each test on a thread of its own, started with the default MXCSR.
        assert!(!denormals_flushed() && !flushes(products()), "control");
        assert!(flush_denormals());
        assert!(denormals_flushed() && flushes(products()));
        let pool = rayon::broadcast(|_| (denormals_flushed(), flushes(products())));
        assert_eq!(pool.len(), rayon::current_num_threads());
        assert!(pool.iter().all(|&s| s == (true, true)), "{pool:?}");
        // The other bits (exception masks, rounding) are left as they were: the default
        // 0x1F80 plus the two bits, ignoring the six sticky exception flags.
        assert_eq!(read_mxcsr() & !0x3F, 0x1F80 | FTZ | DAZ);
    }
}
