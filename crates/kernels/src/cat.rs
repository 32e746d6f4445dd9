//! Concatenation of NCHW buffers along the channel axis, and the slices that are its gradient.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::uninit;

/// Channel planes of `P` pixels copied per task: a few planes of a 32×32 training patch, one
/// of a large inference tile (which has a batch of one, so the batch alone gives no
/// parallelism).
fn planes_per_task(p: usize) -> usize {
    (16384 / p.max(1)).max(1)
}

/// `n` planes of `p` values, plane `i` a copy of `source(i)`'s first `p` values, copied in
/// parallel without zero-filling the buffer first.
fn gather_planes<'a>(n: usize, p: usize, source: impl Fn(usize) -> &'a [f32] + Sync) -> Vec<f32> {
    if n * p == 0 {
        return Vec::new();
    }
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(p)
            .with_min_len(planes_per_task(p))
            .enumerate()
            .for_each(|(i, dst)| uninit::write(dst, &source(i)[..p]));
    };
    // SAFETY: the buffer is `n` planes of `p` values, and each is written whole from a slice of
    // exactly `p` values.
    unsafe { uninit::vec_written_by(n * p, fill) }
}

/// `[B, Σ c_i, P]` from parts `[B, c_i, P]` (`P` pixels per channel), in parallel over the
/// output's channel planes.
pub(crate) fn forward(parts: &[(&[f32], usize)], b: usize, p: usize) -> Vec<f32> {
    let total: usize = parts.iter().map(|&(_, c)| c).sum();
    // Output channel `j` of an image is channel `j − start[k]` of part `k`.
    let starts: Vec<usize> = parts
        .iter()
        .scan(0, |at, &(_, c)| {
            let s = *at;
            *at += c;
            Some(s)
        })
        .collect();
    gather_planes(b * total, p, |plane| {
        let (img, j) = (plane / total, plane % total);
        let k = starts.partition_point(|&s| s <= j) - 1;
        let (src, c) = parts[k];
        &src[(img * c + j - starts[k]) * p..]
    })
}

/// Channels `start..start + len` of `[B, C, P]`, as `[B, len, P]`.
pub(crate) fn slice(x: &[f32], [b, c, p]: [usize; 3], start: usize, len: usize) -> Vec<f32> {
    gather_planes(b * len, p, |plane| {
        let (img, j) = (plane / len, plane % len);
        &x[(img * c + start + j) * p..]
    })
}
