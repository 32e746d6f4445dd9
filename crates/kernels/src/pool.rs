//! 2×2 max pooling with stride 2 on NCHW `f32` buffers.

use rayon::prelude::*;

/// Planes per parallel task: a few thousand pixels each.
fn planes_per_task(plane: usize) -> usize {
    (4096 / plane.max(1)).max(1)
}

/// Forward: `[B·C, H, W]` planes → `[B·C, H/2, W/2]` (`h`, `w` even).
pub(crate) fn forward(x: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut y = vec![0.0f32; planes * ho * wo];
    if y.is_empty() {
        return y;
    }
    let per = planes_per_task(h * w);
    y.par_chunks_mut(per * ho * wo)
        .zip(x.par_chunks(per * h * w))
        .for_each(|(yc, xc)| {
            for (yp, xp) in yc.chunks_exact_mut(ho * wo).zip(xc.chunks_exact(h * w)) {
                for i in 0..ho {
                    let (r0, r1) = (&xp[2 * i * w..][..w], &xp[(2 * i + 1) * w..][..w]);
                    for (j, out) in yp[i * wo..][..wo].iter_mut().enumerate() {
                        *out = r0[2 * j]
                            .max(r0[2 * j + 1])
                            .max(r1[2 * j].max(r1[2 * j + 1]));
                    }
                }
            }
        });
    y
}

/// Gradient: each window's output gradient goes to the first of its maxima (row-major order),
/// as in PyTorch.
pub(crate) fn backward(x: &[f32], dy: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut dx = vec![0.0f32; planes * h * w];
    if dx.is_empty() {
        return dx;
    }
    let per = planes_per_task(h * w);
    dx.par_chunks_mut(per * h * w)
        .zip(x.par_chunks(per * h * w))
        .zip(dy.par_chunks(per * ho * wo))
        .for_each(|((dxc, xc), dyc)| {
            for ((dxp, xp), dyp) in dxc
                .chunks_exact_mut(h * w)
                .zip(xc.chunks_exact(h * w))
                .zip(dyc.chunks_exact(ho * wo))
            {
                for i in 0..ho {
                    for j in 0..wo {
                        let idx = [
                            2 * i * w + 2 * j,
                            2 * i * w + 2 * j + 1,
                            (2 * i + 1) * w + 2 * j,
                            (2 * i + 1) * w + 2 * j + 1,
                        ];
                        let mut best = idx[0];
                        for &p in &idx[1..] {
                            if xp[p] > xp[best] {
                                best = p;
                            }
                        }
                        dxp[best] = dyp[i * wo + j];
                    }
                }
            }
        });
    dx
}
