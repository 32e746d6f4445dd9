//! Deterministic coherent noise: hashed-gradient (Perlin-style) noise and fractal sums.
//!
//! Every value is a pure function of the seed and the sample coordinates, so fields are
//! identical whatever the thread count or the order pixels are computed in.

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;

/// A well-mixed 64-bit hash of `x`: the first output of SplitMix64 seeded with `x` (one
/// golden-ratio step and the finaliser of Steele, Lea & Flood 2014).
pub(crate) fn mix(x: u64) -> u64 {
    SplitMix64::seed_from_u64(x).next_u64()
}

/// A sub-seed for a named stream of a world's seed.
pub(crate) fn stream(seed: u64, tag: u64) -> u64 {
    mix(seed ^ mix(tag.wrapping_mul(0xD6E8_FEB8_6659_FD93)))
}

/// Uniform in [0, 1) from a hash.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// An approximately standard normal deviate from one hash: the Irwin–Hall sum of four
/// 16-bit uniforms, centred and scaled to unit variance (range ±3.46).
pub(crate) fn normal(h: u64) -> f64 {
    let u = |k: u32| ((h >> (16 * k)) & 0xFFFF) as f64 / 65_536.0;
    (u(0) + u(1) + u(2) + u(3) - 2.0) * 3f64.sqrt()
}

const S: f64 = std::f64::consts::FRAC_1_SQRT_2;
const GRADS: [(f64, f64); 8] = [
    (1.0, 0.0),
    (-1.0, 0.0),
    (0.0, 1.0),
    (0.0, -1.0),
    (S, S),
    (-S, S),
    (S, -S),
    (-S, -S),
];

fn lattice(seed: u64, ix: i64, iy: i64) -> (f64, f64) {
    // One multiply-xorshift-multiply round; the top three bits pick the gradient.
    let a = seed
        ^ (ix as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (iy as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    let h = (a ^ (a >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    GRADS[(h >> 61) as usize]
}

fn fade(t: f64) -> f64 {
    t * t * t * (t * (t * 6.0 - 15.0) + 10.0)
}

/// Gradient noise at (x, y) (lattice spacing 1); zero on lattice points, roughly in
/// −0.7…0.7 with a standard deviation of about 0.2.
pub(crate) fn gradient(seed: u64, x: f64, y: f64) -> f64 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (ix, iy) = (x0 as i64, y0 as i64);
    let dot = |dx: i64, dy: i64| {
        let (gx, gy) = lattice(seed, ix + dx, iy + dy);
        gx * (fx - dx as f64) + gy * (fy - dy as f64)
    };
    let (d00, d10, d01, d11) = (dot(0, 0), dot(1, 0), dot(0, 1), dot(1, 1));
    let (u, v) = (fade(fx), fade(fy));
    let a = d00 + u * (d10 - d00);
    let b = d01 + u * (d11 - d01);
    a + v * (b - a)
}

/// Fractional Brownian motion: `Σ_o gain^o · gradient(2^o · p + offset_o)` over `octaves`,
/// divided by `√Σ gain^{2o}` so that the variance does not grow with the number of octaves.
/// Each octave has its own seed and offset so lattices do not line up.
#[derive(Debug, Clone)]
pub(crate) struct Fbm {
    octaves: Vec<(u64, f64, f64, f64, f64)>,
    norm: f64,
}

impl Fbm {
    pub(crate) fn new(seed: u64, octaves: u32, gain: f64) -> Self {
        let (mut amp, mut freq, mut norm) = (1.0, 1.0, 0.0);
        let octaves = (0..octaves)
            .map(|o| {
                let s = stream(seed, u64::from(o));
                let (ox, oy) = (unit(mix(s ^ 1)) * 1000.0, unit(mix(s ^ 2)) * 1000.0);
                let out = (s, amp, freq, ox, oy);
                norm += amp * amp;
                amp *= gain;
                freq *= 2.0;
                out
            })
            .collect();
        Self {
            octaves,
            norm: 1.0 / f64::sqrt(norm),
        }
    }

    /// The value at (x, y) (units of the largest wavelength).
    pub(crate) fn at(&self, x: f64, y: f64) -> f64 {
        let mut sum = 0.0;
        for &(s, amp, freq, ox, oy) in &self.octaves {
            sum += amp * gradient(s, x * freq + ox, y * freq + oy);
        }
        sum * self.norm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_deterministic_and_coherent() {
        let a = gradient(7, 3.3, -1.7);
        assert_eq!(a.to_bits(), gradient(7, 3.3, -1.7).to_bits());
        assert!((a - gradient(8, 3.3, -1.7)).abs() > 0.0 || a.abs() < 1e-12);
        // Zero on lattice points; continuous (small step, small change).
        assert!(gradient(1, 4.0, -2.0).abs() < 1e-12);
        let d = (gradient(1, 0.5, 0.5) - gradient(1, 0.5001, 0.5)).abs();
        assert!(d < 1e-3, "{d}");
        // Standard deviation near 0.2 (measured over a 200×200 sample).
        let mut s2 = 0.0;
        for i in 0..200 {
            for j in 0..200 {
                let v = gradient(3, i as f64 * 0.137, j as f64 * 0.173);
                s2 += v * v;
            }
        }
        let sd = (s2 / 40_000.0).sqrt();
        assert!((0.12..0.3).contains(&sd), "{sd}");
        let f = Fbm::new(5, 6, 0.5).at(0.3, 0.9);
        assert!(f.abs() < 3.0);
    }

    #[test]
    fn normals_have_unit_variance() {
        let n = 20_000u64;
        let (mut m, mut v) = (0.0, 0.0);
        for i in 0..n {
            let z = normal(mix(i));
            m += z;
            v += z * z;
        }
        let (m, v) = (m / n as f64, v / n as f64);
        assert!(m.abs() < 0.05 && (v - 1.0).abs() < 0.05, "{m} {v}");
    }
}
