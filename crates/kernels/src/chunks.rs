//! Running a kernel over chunks of rows on rayon's pool.
//!
//! The kernels see their work as `units` rows (of the batch's images, one after the other) cut
//! into chunks of `rows` rows each (the last one shorter); a chunk is handed to the kernel as
//! its row range `u0..u1`.

use rayon::prelude::*;

use crate::mm::threads;

/// The row range `u0..u1` of chunk `c`.
fn range(c: usize, rows: usize, units: usize) -> (usize, usize) {
    (c * rows, ((c + 1) * rows).min(units))
}

/// Runs `run(u0, u1, parallel)` once for every chunk: the chunks in parallel on rayon's pool
/// (with `parallel` false) when there are at least as many as threads, else one after the other
/// with `parallel` true, so that each chunk's own matrix product runs in parallel instead.
pub(crate) fn for_each_chunk(units: usize, rows: usize, run: impl Fn(usize, usize, bool) + Sync) {
    let chunks = units.div_ceil(rows);
    let one = |c: usize, parallel: bool| {
        let (u0, u1) = range(c, rows, units);
        run(u0, u1, parallel);
    };
    if chunks >= threads() {
        (0..chunks).into_par_iter().for_each(|c| one(c, false));
    } else {
        (0..chunks).for_each(|c| one(c, true));
    }
}

/// The sum over all chunks of a per-chunk result of `len` values (a filter gradient).
///
/// `run(u0, u1, acc, accumulate, parallel)` writes the contribution of rows `u0..u1` into
/// `acc`, or adds it when `accumulate` is true (every chunk of a buffer but its first).
///
/// The chunks are split into `t = min(threads, chunks)` contiguous ranges of `⌈chunks / t⌉`
/// chunks, one per task; each task accumulates its chunks in order into its own buffer, and the
/// buffers are summed in task order. The result is therefore the same, to the bit, for a given
/// thread count. With a single range (one thread or one chunk) each product runs in parallel
/// instead.
pub(crate) fn sum_chunks(
    units: usize,
    rows: usize,
    len: usize,
    run: impl Fn(usize, usize, &mut [f32], bool, bool) + Sync,
) -> Vec<f32> {
    let chunks = units.div_ceil(rows);
    // Accumulates chunks `c0..c1` into `acc`.
    let run_range = |c0: usize, c1: usize, acc: &mut [f32], parallel: bool| {
        for c in c0..c1 {
            let (u0, u1) = range(c, rows, units);
            run(u0, u1, acc, c > c0, parallel);
        }
    };
    let t = threads().min(chunks);
    if t <= 1 {
        let mut acc = vec![0.0f32; len];
        run_range(0, chunks, &mut acc, true);
        return acc;
    }
    let per = chunks.div_ceil(t);
    let parts: Vec<Vec<f32>> = (0..t)
        .into_par_iter()
        .map(|i| {
            let mut acc = vec![0.0f32; len];
            let (c0, c1) = (i * per, ((i + 1) * per).min(chunks));
            if c0 < c1 {
                run_range(c0, c1, &mut acc, false);
            }
            acc
        })
        .collect();
    sum_parts(parts)
}

/// The element-wise sum of per-thread partial results (all of one length), in order.
fn sum_parts(parts: Vec<Vec<f32>>) -> Vec<f32> {
    let mut parts = parts.into_iter();
    let mut acc = parts.next().unwrap_or_default();
    for p in parts {
        for (a, v) in acc.iter_mut().zip(&p) {
            *a += v;
        }
    }
    acc
}
