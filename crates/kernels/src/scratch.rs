//! Per-thread scratch buffers, reused across calls so the hot loops do not allocate.

use std::cell::RefCell;

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
