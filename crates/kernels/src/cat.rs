//! Concatenation of NCHW buffers along the channel axis, and the slices that are its gradient.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::uninit;

/// `[B, Σ c_i, P]` from parts `[B, c_i, P]` (`P` pixels per channel), in parallel over the batch.
pub(crate) fn forward(parts: &[(&[f32], usize)], b: usize, p: usize) -> Vec<f32> {
    let total: usize = parts.iter().map(|&(_, c)| c).sum();
    if b * total * p == 0 {
        return Vec::new();
    }
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(total * p)
            .enumerate()
            .for_each(|(img, dst)| {
                let mut at = 0;
                for &(src, c) in parts {
                    uninit::write(&mut dst[at..at + c * p], &src[img * c * p..][..c * p]);
                    at += c * p;
                }
            });
    };
    // SAFETY: each image's `total·p` values are the parts' `c·p` blocks one after the other
    // (`Σ c = total`), and the images tile the buffer.
    unsafe { uninit::vec_written_by(b * total * p, fill) }
}

/// Channels `start..start + len` of `[B, C, P]`, as `[B, len, P]`.
pub(crate) fn slice(x: &[f32], [b, c, p]: [usize; 3], start: usize, len: usize) -> Vec<f32> {
    if b * len * p == 0 {
        return Vec::new();
    }
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(len * p)
            .enumerate()
            .for_each(|(img, dst)| uninit::write(dst, &x[(img * c + start) * p..][..len * p]));
    };
    // SAFETY: the images' `len·p` blocks tile the buffer and each is written whole.
    unsafe { uninit::vec_written_by(b * len * p, fill) }
}
