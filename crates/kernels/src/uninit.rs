//! Output buffers that are written once, without zero-filling them first, and the handle
//! through which parallel tasks write their disjoint parts of one.
//!
//! `vec![0.0; n]` costs a `memset` of the whole buffer when the allocator reuses memory (as it
//! does after [`crate::tune_allocator`]); for a buffer the kernel then overwrites completely
//! that is pure waste.

use std::marker::PhantomData;
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
    // Debug builds and every test build start from NaN, so that an element `fill` misses
    // shows up as a NaN in the output, which the tests against candle's operators catch.
    #[cfg(any(debug_assertions, test))]
    for x in buf.iter_mut() {
        x.write(f32::NAN);
    }
    fill(buf);
    // SAFETY: `n ≤ capacity`, and the caller guarantees every element was written.
    unsafe { v.set_len(n) };
    v
}

/// Writes `src` into `dst`.
///
/// # Panics
/// If the lengths differ (an element of `dst` would stay unwritten).
pub(crate) fn write(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "uninit::write: lengths differ");
    for (d, &s) in dst.iter_mut().zip(src) {
        d.write(s);
    }
}

/// A buffer, mutably borrowed for `'a`, that parallel tasks write in disjoint parts: each
/// takes its part with [`SharedMut::range`]. The borrow keeps the buffer alive and untouched
/// by anything else for as long as the handle or a part taken from it lives.
pub(crate) struct SharedMut<'a, T> {
    ptr: *mut T,
    len: usize,
    buf: PhantomData<&'a mut [T]>,
}

impl<T> Clone for SharedMut<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SharedMut<'_, T> {}

// SAFETY: the handle gives out `&mut T` parts to whichever thread holds it, which needs
// `T: Send`; that no two parts overlap is the contract of `range`.
unsafe impl<T: Send> Send for SharedMut<'_, T> {}
// SAFETY: as for `Send`: through a shared handle, threads only take disjoint parts.
unsafe impl<T: Send> Sync for SharedMut<'_, T> {}

impl<'a, T> SharedMut<'a, T> {
    /// A handle on `buf` for as long as it is borrowed.
    pub fn new(buf: &'a mut [T]) -> Self {
        Self {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            buf: PhantomData,
        }
    }

    /// The part `start..start + len` of the buffer.
    ///
    /// # Safety
    /// No two parts taken from one buffer and alive at the same time may overlap.
    ///
    /// # Panics
    /// If the part does not lie inside the buffer.
    pub unsafe fn range(&self, start: usize, len: usize) -> &'a mut [T] {
        assert!(
            start.checked_add(len).is_some_and(|end| end <= self.len),
            "SharedMut: part {start} + {len} outside a buffer of {}",
            self.len
        );
        // SAFETY: the part lies inside the buffer (asserted), which the borrow `'a` keeps
        // alive and unaliased outside this handle; the caller guarantees that no other live
        // part overlaps it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "outside a buffer")]
    fn a_part_whose_end_wraps_around_is_refused() {
        let mut buf = [0f32; 8];
        let out = SharedMut::new(&mut buf);
        // `start + len` wraps to 1: without checked arithmetic this would pass a `≤ 8` test.
        // SAFETY: no other part is alive (and the call must panic before making one).
        let _ = unsafe { out.range(usize::MAX, 2) };
    }

    #[test]
    fn parts_write_into_the_buffer() {
        let mut buf = [0f32; 6];
        let out = SharedMut::new(&mut buf);
        // SAFETY: the two parts 0..2 and 2..6 do not overlap.
        let (a, b) = unsafe { (out.range(0, 2), out.range(2, 4)) };
        a.fill(1.0);
        b.fill(2.0);
        // Exact values written, not computed: compare the bits.
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&buf), bits(&[1.0, 1.0, 2.0, 2.0, 2.0, 2.0]));
    }
}
