//! Per-thread scratch buffers, reused across calls so the hot loops do not allocate.

use std::cell::RefCell;
use std::mem::MaybeUninit;

thread_local! {
    static SCRATCH: RefCell<[Vec<f32>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// Runs `f` with two scratch slices of lengths `a` and `b` owned by the current thread.
///
/// The contents are unspecified on entry. If the thread's buffers are already in use (a
/// re-entrant call, e.g. through rayon work stealing), fresh buffers are allocated instead.
pub(crate) fn with_scratch<R>(
    a: usize,
    b: usize,
    f: impl FnOnce(&mut [f32], &mut [f32]) -> R,
) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let [x, y] = &mut *bufs;
            if x.len() < a {
                x.resize(a, 0.0);
            }
            if y.len() < b {
                y.resize(b, 0.0);
            }
            f(&mut x[..a], &mut y[..b])
        }
        Err(_) => f(&mut vec![0.0; a], &mut vec![0.0; b]),
    })
}

/// A raw pointer to an output buffer that parallel tasks write in disjoint parts.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: `SharedMut` is only handed to tasks that write disjoint ranges (see `range`).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    pub fn new(buf: &mut [f32]) -> Self {
        Self {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
        }
    }

    /// As [`SharedMut::new`], for a buffer written through [`SharedMut::range_uninit`].
    pub fn new_uninit(buf: &mut [MaybeUninit<f32>]) -> Self {
        Self {
            ptr: buf.as_mut_ptr().cast(),
            len: buf.len(),
        }
    }

    /// The sub-slice `start..start + len` of a buffer that may not be initialised yet.
    ///
    /// # Safety
    /// As [`SharedMut::range`].
    pub unsafe fn range_uninit<'a>(&self, start: usize, len: usize) -> &'a mut [MaybeUninit<f32>] {
        assert!(start + len <= self.len, "SharedMut range out of bounds");
        // SAFETY: in bounds (asserted); `MaybeUninit<f32>` has the layout of `f32` and needs
        // no initialisation; disjointness and lifetime are the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start).cast(), len) }
    }

    /// The sub-slice `start..start + len`.
    ///
    /// # Safety
    /// No two live slices obtained from the same buffer may overlap, and the buffer must
    /// outlive the slice.
    pub unsafe fn range<'a>(&self, start: usize, len: usize) -> &'a mut [f32] {
        assert!(start + len <= self.len, "SharedMut range out of bounds");
        // SAFETY: in bounds (asserted); disjointness and lifetime are the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}
