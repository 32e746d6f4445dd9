//! Output buffers that are written once, without zero-filling them first.
//!
//! `vec![0.0; n]` costs a `memset` of the whole buffer when the allocator reuses memory (as it
//! does after [`crate::tune_allocator`]); for a buffer the kernel then overwrites completely that
//! is pure waste (13 % of AMUN's inference time went to it).

use std::mem::MaybeUninit;

/// A vector of `n` floats filled by `fill`, which is given the uninitialised buffer.
///
/// # Safety
/// `fill` must write every element of the slice it is given (if it panics, nothing is
/// exposed: the vector is dropped with length 0).
pub(crate) unsafe fn vec_written_by(
    n: usize,
    fill: impl FnOnce(&mut [MaybeUninit<f32>]),
) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    let buf = &mut v.spare_capacity_mut()[..n];
    // Debug builds (the tests) start from NaN, so that an element `fill` misses shows up as a
    // NaN in the output, which the tests against candle's operators catch.
    #[cfg(debug_assertions)]
    for x in buf.iter_mut() {
        x.write(f32::NAN);
    }
    fill(buf);
    // SAFETY: `n ≤ capacity`, and the caller guarantees every element was written.
    unsafe { v.set_len(n) };
    v
}

/// Writes `src` into `dst` (equal lengths).
pub(crate) fn write(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    debug_assert_eq!(dst.len(), src.len());
    for (d, &s) in dst.iter_mut().zip(src) {
        d.write(s);
    }
}
