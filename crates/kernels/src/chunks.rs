//! Running a kernel over chunks of rows on rayon's pool.
//!
//! The kernels see their work as `units` rows (of the batch's images, one after the other) cut
//! into chunks ([`Split`]): of `rows` rows each, or bands that stay within one image; a chunk
//! is handed to the kernel as its row range `u0..u1`.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::mm::threads;
use crate::uninit::{self, SharedMut};

/// How `units` rows are cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Split {
    units: usize,
    cut: Cut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Chunks of `rows` rows each, the last one shorter.
    Rows(usize),
    /// Each block of `block` rows cut into bands of `rows` rows (the last band of a block
    /// shorter).
    Bands { block: usize, rows: usize },
    /// `n` chunks of whole blocks of `block` rows, their sizes differing by one block at most.
    Blocks { block: usize, n: usize },
}

impl Split {
    /// Chunks of `rows` rows each (the last one shorter).
    pub fn even(units: usize, rows: usize) -> Self {
        Self {
            units,
            cut: Cut::Rows(rows.max(1)),
        }
    }

    /// Each block of `block` rows (`units` is a multiple of it) cut into bands of at most
    /// `rows` rows, as even as possible; no chunk straddles two blocks.
    ///
    /// # Panics
    /// If `units` is not a multiple of `block` (the rows of a partial block would belong to
    /// no chunk).
    pub fn within(units: usize, block: usize, rows: usize) -> Self {
        assert!(
            block == 0 || units.is_multiple_of(block),
            "Split: {units} rows are not whole blocks of {block}"
        );
        if block == 0 {
            return Self::even(units, rows);
        }
        let per_block = block.div_ceil(rows.clamp(1, block));
        Self {
            units,
            cut: Cut::Bands {
                block,
                rows: block.div_ceil(per_block),
            },
        }
    }

    /// Whole blocks of `block` rows (`units` is a multiple of it), at most `rows` rows per
    /// chunk where a block fits, in a number of chunks that is a multiple of the thread count
    /// (when there are blocks enough) and of sizes that differ by one block at most, so that
    /// every thread gets the same work: 34 images in chunks of at most 7 are 6 chunks of 6 or
    /// 5 images, not 5 chunks of which one thread runs 3.
    ///
    /// # Panics
    /// As [`Split::within`].
    pub fn blocks(units: usize, block: usize, rows: usize) -> Self {
        assert!(
            block == 0 || units.is_multiple_of(block),
            "Split: {units} rows are not whole blocks of {block}"
        );
        if block == 0 || units == 0 {
            return Self::even(units, rows);
        }
        let blocks = units / block;
        let per_chunk = (rows / block).max(1);
        let t = threads();
        let n = blocks.div_ceil(per_chunk).div_ceil(t) * t;
        Self {
            units,
            cut: Cut::Blocks {
                block,
                n: n.min(blocks),
            },
        }
    }

    /// The number of chunks.
    pub fn count(&self) -> usize {
        match self.cut {
            Cut::Rows(rows) => self.units.div_ceil(rows),
            Cut::Bands { block, rows } => self.units / block * block.div_ceil(rows),
            Cut::Blocks { n, .. } => n,
        }
    }

    /// The row range `u0..u1` of chunk `c`.
    pub fn range(&self, c: usize) -> (usize, usize) {
        match self.cut {
            Cut::Rows(rows) => (c * rows, ((c + 1) * rows).min(self.units)),
            Cut::Bands { block, rows } => {
                let per_block = block.div_ceil(rows);
                let (b, i) = (c / per_block, c % per_block);
                let start = b * block;
                (start + i * rows, start + ((i + 1) * rows).min(block))
            }
            Cut::Blocks { block, n } => {
                let blocks = self.units / block;
                (c * blocks / n * block, (c + 1) * blocks / n * block)
            }
        }
    }
}

/// Runs `run(u0, u1, parallel)` once for every chunk: the chunks in parallel on rayon's pool
/// (with `parallel` false) when there are at least as many as threads, else one after the other
/// with `parallel` true, so that each chunk's own matrix product runs in parallel instead.
pub(crate) fn for_each_chunk(split: Split, run: impl Fn(usize, usize, bool) + Sync) {
    let chunks = split.count();
    let one = |c: usize, parallel: bool| {
        let (u0, u1) = split.range(c);
        run(u0, u1, parallel);
    };
    if chunks >= threads() {
        (0..chunks).into_par_iter().for_each(|c| one(c, false));
    } else {
        (0..chunks).for_each(|c| one(c, true));
    }
}

/// A buffer of `len` floats that the chunks write in parallel ([`for_each_chunk`]), without
/// zero-filling it first: `run(u0, u1, parallel, out)` writes the part of the buffer that
/// chunk `u0..u1` owns, through `out`.
///
/// # Safety
/// The parts the chunks write must not overlap, and together they must cover the buffer.
pub(crate) unsafe fn write_chunks(
    len: usize,
    split: Split,
    run: impl Fn(usize, usize, bool, SharedMut<'_, MaybeUninit<f32>>) + Sync,
) -> Vec<f32> {
    let fill = |buf: &mut [MaybeUninit<f32>]| {
        let out = SharedMut::new(buf);
        for_each_chunk(split, |u0, u1, parallel| run(u0, u1, parallel, out));
    };
    // SAFETY: the caller guarantees that the chunks' parts cover the buffer, and that they do
    // not overlap, as `SharedMut::range` requires.
    unsafe { uninit::vec_written_by(len, fill) }
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
    split: Split,
    len: usize,
    run: impl Fn(usize, usize, &mut [f32], bool, bool) + Sync,
) -> Vec<f32> {
    let chunks = split.count();
    // Accumulates chunks `c0..c1` into `acc`.
    let run_range = |c0: usize, c1: usize, acc: &mut [f32], parallel: bool| {
        for c in c0..c1 {
            let (u0, u1) = split.range(c);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks of a split, as row ranges, in order.
    fn ranges(split: Split) -> Vec<(usize, usize)> {
        (0..split.count()).map(|c| split.range(c)).collect()
    }

    #[test]
    fn splits_cover_every_row_once_and_bands_stay_within_blocks() {
        assert_eq!(ranges(Split::even(10, 4)), [(0, 4), (4, 8), (8, 10)]);
        // Blocks of 5 rows in bands of at most 3: two bands of 3 and 2 per block.
        assert_eq!(
            ranges(Split::within(10, 5, 3)),
            [(0, 3), (3, 5), (5, 8), (8, 10)]
        );
        for (units, block, rows) in [(57, 19, 15), (64, 32, 56), (7, 7, 1), (12, 4, 100)] {
            let r = ranges(Split::within(units, block, rows));
            let mut next = 0;
            for &(u0, u1) in &r {
                assert_eq!(u0, next, "{units}/{block}/{rows}: {r:?}");
                assert!(u0 < u1 && u1 - u0 <= rows.max(1));
                assert_eq!(u0 / block, (u1 - 1) / block, "straddles a block: {r:?}");
                next = u1;
            }
            assert_eq!(next, units);
        }
    }

    #[test]
    fn block_splits_are_balanced_whole_blocks() {
        for (units, block, rows) in [(34 * 8, 8, 56), (34 * 4, 4, 64), (6, 2, 100), (9, 3, 1)] {
            let split = Split::blocks(units, block, rows);
            let r = ranges(split);
            let blocks = units / block;
            assert!(
                r.len() == blocks || r.len().is_multiple_of(threads()),
                "{r:?}"
            );
            let mut next = 0;
            let (mut lo, mut hi) = (usize::MAX, 0);
            for &(u0, u1) in &r {
                assert_eq!(u0, next, "{units}/{block}/{rows}: {r:?}");
                assert!(u0 < u1 && u0.is_multiple_of(block) && u1.is_multiple_of(block));
                lo = lo.min(u1 - u0);
                hi = hi.max(u1 - u0);
                next = u1;
            }
            assert_eq!(next, units);
            assert!(hi - lo <= block, "unbalanced: {r:?}");
        }
        // 34 images of 8 rows, at most 7 images a chunk: 5 chunks are needed, and with two
        // threads that becomes 6 chunks of 6 or 5 images.
        if threads() == 2 {
            let r = ranges(Split::blocks(34 * 8, 8, 56));
            assert_eq!(r.len(), 6);
        }
    }
}
