//! Concatenation of NCHW buffers along the channel axis, and the slices that are its gradient.

use rayon::prelude::*;

/// `[B, Σ c_i, P]` from parts `[B, c_i, P]` (`P` pixels per channel), in parallel over the batch.
pub(crate) fn forward(parts: &[(&[f32], usize)], b: usize, p: usize) -> Vec<f32> {
    let total: usize = parts.iter().map(|&(_, c)| c).sum();
    let mut y = vec![0.0f32; b * total * p];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(total * p)
        .enumerate()
        .for_each(|(img, dst)| {
            let mut at = 0;
            for &(src, c) in parts {
                dst[at..at + c * p].copy_from_slice(&src[img * c * p..][..c * p]);
                at += c * p;
            }
        });
    y
}

/// Channels `start..start + len` of `[B, C, P]`, as `[B, len, P]`.
pub(crate) fn slice(x: &[f32], [b, c, p]: [usize; 3], start: usize, len: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; b * len * p];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(len * p)
        .enumerate()
        .for_each(|(img, dst)| dst.copy_from_slice(&x[(img * c + start) * p..][..len * p]));
    y
}
