//! Band statistics from the samples on disk, in `f64`, as `gdalinfo -stats` reports them.
//!
//! [`crate::read`] converts samples to `f32`, which rounds integers above 2²⁴ (Int32 values
//! near 10⁸ by up to 4) and cannot hold Float64 values above 3.4·10³⁸. Statistics are
//! therefore computed here, chunk by chunk, from each sample's own value in `f64`, without
//! holding the image: per chunk, the valid values scaled by a power of two above their
//! largest magnitude (exact, and no square can overflow), a two-pass mean and sum of squared
//! deviations; chunks are merged with the pairwise update of Chan, Golub and LeVeque (1979).

use std::io::BufReader;
use std::path::Path;

use rayon::prelude::*;

use super::decode::{
    batches, check_chunks, check_readable, chunk_samples, guarded, open_file, read_raw, try_vec,
    ChunkRef,
};
use super::layout::{open, Layout};
use super::{metadata, DataType, ReadOptions};
use crate::error::{Error, Result};
use crate::raster::Stats;

/// Statistics of every band of a GeoTIFF over its valid pixels: `None` for a band whose
/// every pixel is nodata. The population standard deviation, as `gdalinfo -stats`.
///
/// Samples equal to `GDAL_NODATA` (compared in the band's type) and NaN are skipped;
/// sparse chunks hold nodata (or zeros, without a nodata value). An infinite sample makes
/// the minimum or maximum infinite and the mean and deviation NaN, as in GDAL. The file
/// needs no georeferencing.
///
/// # Errors
/// As [`crate::read`], except that no georeferencing is required.
pub fn statistics(path: impl AsRef<Path>) -> Result<Vec<Option<Stats>>> {
    statistics_with(path, &ReadOptions::default())
}

/// [`statistics`] with explicit safety limits.
///
/// # Errors
/// As [`statistics`].
pub fn statistics_with(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Vec<Option<Stats>>> {
    let path = path.as_ref();
    let file = open_file(path)?;
    guarded(path, || {
        let mut opened = open(BufReader::new(file), path, opts)?;
        let l = opened.layout.clone();
        check_readable(&l, path)?;
        let chunk_samples_max = (l.chunk_w as u64)
            .saturating_mul(l.chunk_h as u64)
            .saturating_mul(l.samples_per_chunk_pixel() as u64);
        if chunk_samples_max > opts.max_samples {
            return Err(Error::LimitExceeded {
                path: path.to_path_buf(),
                what: "samples in one chunk",
                value: chunk_samples_max,
                limit: opts.max_samples,
            });
        }
        let planes: Vec<usize> = if l.planar {
            (0..l.samples).collect()
        } else {
            vec![0]
        };
        check_chunks(&l, path, &planes)?;
        let nodata = metadata::parse_nodata(opened.tags.nodata.as_deref());
        let mut total = vec![Moments::default(); l.samples];
        for batch in batches(&l, &planes) {
            let raws = batch
                .iter()
                .map(|c| read_raw(&mut opened, path, &l, c.index))
                .collect::<Result<Vec<_>>>()?;
            let parts = batch
                .par_iter()
                .zip(raws.par_iter())
                .map(|(c, raw)| chunk_moments(&l, path, c, raw.as_deref(), nodata))
                .collect::<Result<Vec<_>>>()?;
            for (c, part) in batch.iter().zip(parts) {
                for (k, m) in part.into_iter().enumerate() {
                    let band = if l.planar { c.plane } else { k };
                    total[band] = total[band].merge(&m);
                }
            }
        }
        Ok(total.iter().map(Moments::stats).collect())
    })
}

/// The moments of the valid pixels of one chunk, per band it holds (1 when band-interleaved).
fn chunk_moments(
    l: &Layout,
    path: &Path,
    c: &ChunkRef,
    raw: Option<&[u8]>,
    nodata: Option<f64>,
) -> Result<Vec<Moments>> {
    let spc = l.samples_per_chunk_pixel();
    let rows = l.chunk_h.min(l.height - c.cy * l.chunk_h);
    let cols = l.chunk_w.min(l.width - c.cx * l.chunk_w);
    let Some(raw) = raw else {
        // A sparse chunk: nodata, or zeros when the file declares none (as GDAL reads it).
        let n = if nodata.is_some() { 0 } else { rows * cols };
        return Ok(vec![Moments::zeros(n as u64); spc]);
    };
    let buf = chunk_samples(l, path, c, raw)?;
    let size = l.data_type.size();
    // The nodata sentinel is matched exactly, as GDAL does.
    #[allow(clippy::float_cmp)]
    let is_nodata = |v: f64| match (nodata, l.data_type) {
        (None, _) => false,
        // GDAL compares in the band's type.
        (Some(nd), DataType::F32) => v as f32 == nd as f32,
        (Some(nd), _) => v == nd,
    };
    let mut values: Vec<Vec<f64>> = Vec::with_capacity(spc);
    for _ in 0..spc {
        values.push(try_vec(path, "a chunk's samples", rows * cols)?);
    }
    for r in 0..rows {
        let row = &buf[r * l.chunk_row_bytes()..][..cols * spc * size];
        for (i, s) in row.chunks_exact(size).enumerate() {
            let v = sample(s, l.data_type);
            if !v.is_nan() && !is_nodata(v) {
                values[i % spc].push(v);
            }
        }
    }
    Ok(values.iter().map(|v| Moments::of(v)).collect())
}

/// One native-order sample as `f64` (exact for every type).
fn sample(s: &[u8], dt: DataType) -> f64 {
    let b = |n: usize| -> [u8; 8] {
        let mut a = [0u8; 8];
        a[..n].copy_from_slice(&s[..n]);
        a
    };
    match dt {
        DataType::U8 => f64::from(s[0]),
        DataType::I8 => f64::from(s[0] as i8),
        DataType::U16 => f64::from(u16::from_ne_bytes([s[0], s[1]])),
        DataType::I16 => f64::from(i16::from_ne_bytes([s[0], s[1]])),
        DataType::U32 => f64::from(u32::from_ne_bytes([s[0], s[1], s[2], s[3]])),
        DataType::I32 => f64::from(i32::from_ne_bytes([s[0], s[1], s[2], s[3]])),
        DataType::F32 => f64::from(f32::from_ne_bytes([s[0], s[1], s[2], s[3]])),
        DataType::F64 => f64::from_ne_bytes(b(8)),
    }
}

/// `x · 2^k`, exact unless the result is subnormal, for any `k` a scale can have.
fn ldexp(x: f64, k: i32) -> f64 {
    // Two factors, each a normal power of two (exponents −1022..=1023).
    let pow2 = |e: i32| f64::from_bits(((e + 1023) as u64) << 52);
    let (a, b) = (k / 2, k - k / 2);
    x * pow2(a.clamp(-1022, 1023)) * pow2(b.clamp(-1022, 1023))
}

/// Count, extremes, and the mean and sum of squared deviations of finite values divided by
/// `2^scale`.
#[derive(Debug, Clone, Copy)]
struct Moments {
    /// Valid values, infinite ones included.
    count: u64,
    /// Finite values (those in `mean` and `m2`).
    finite: u64,
    min: f64,
    max: f64,
    scale: i32,
    mean: f64,
    m2: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Self {
            count: 0,
            finite: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            scale: 0,
            mean: 0.0,
            m2: 0.0,
        }
    }
}

impl Moments {
    /// The moments of `n` zeros.
    fn zeros(n: u64) -> Self {
        if n == 0 {
            return Moments::default();
        }
        Moments {
            count: n,
            finite: n,
            min: 0.0,
            max: 0.0,
            ..Moments::default()
        }
    }

    /// The moments of `values` (no NaN).
    fn of(values: &[f64]) -> Self {
        let mut m = Moments {
            count: values.len() as u64,
            ..Moments::default()
        };
        let mut big = 0.0f64;
        for &v in values {
            m.min = m.min.min(v);
            m.max = m.max.max(v);
            if v.is_finite() {
                m.finite += 1;
                big = big.max(v.abs());
            }
        }
        if m.finite == 0 {
            return m;
        }
        // 2^scale > the largest magnitude, so that every scaled value is below 1.
        m.scale = if big == 0.0 {
            0
        } else {
            ((big.to_bits() >> 52) & 0x7ff) as i32 - 1022
        };
        let scaled = values
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| ldexp(v, -m.scale));
        let n = m.finite as f64;
        m.mean = scaled.clone().sum::<f64>() / n;
        m.m2 = scaled.map(|v| (v - m.mean) * (v - m.mean)).sum();
        m
    }

    /// This accumulator expressed at a larger scale.
    fn rescaled(&self, scale: i32) -> Self {
        let k = self.scale - scale;
        Moments {
            scale,
            mean: ldexp(self.mean, k),
            m2: ldexp(self.m2, 2 * k),
            ..*self
        }
    }

    /// The moments of both sets together.
    fn merge(&self, other: &Moments) -> Moments {
        let (min, max) = (self.min.min(other.min), self.max.max(other.max));
        let count = self.count + other.count;
        if other.finite == 0 || self.finite == 0 {
            let base = if self.finite == 0 { other } else { self };
            return Moments {
                count,
                min,
                max,
                ..*base
            };
        }
        let scale = self.scale.max(other.scale);
        let (a, b) = (self.rescaled(scale), other.rescaled(scale));
        let n = (a.finite + b.finite) as f64;
        let (na, nb) = (a.finite as f64, b.finite as f64);
        let delta = b.mean - a.mean;
        Moments {
            count,
            finite: a.finite + b.finite,
            min,
            max,
            scale,
            mean: a.mean + delta * nb / n,
            m2: a.m2 + b.m2 + delta * delta * na * nb / n,
        }
    }

    fn stats(&self) -> Option<Stats> {
        if self.count == 0 {
            return None;
        }
        let (mean, std) = if self.finite < self.count {
            (f64::NAN, f64::NAN)
        } else {
            let var = self.m2 / self.finite as f64;
            (ldexp(self.mean, self.scale), ldexp(var.sqrt(), self.scale))
        };
        Some(Stats {
            min: self.min,
            max: self.max,
            mean,
            std,
            count: self.count as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(values: &[f64]) -> Stats {
        Moments::of(values).stats().unwrap()
    }

    #[test]
    fn one_chunk_matches_the_textbook_formulas() {
        // Values 1..=15: mean 8, population variance (15² − 1)/12.
        let v: Vec<f64> = (1..=15).map(f64::from).collect();
        let s = stats(&v);
        assert_eq!((s.min, s.max, s.mean, s.count), (1.0, 15.0, 8.0, 15));
        assert!((s.std - (224.0f64 / 12.0).sqrt()).abs() < 1e-14);
    }

    #[test]
    fn merged_chunks_equal_one_chunk() {
        let v: Vec<f64> = (0..1000)
            .map(|i| f64::from(i * 37 % 101) * 0.5 - 7.0)
            .collect();
        let whole = stats(&v);
        let merged = v
            .chunks(37)
            .map(Moments::of)
            .fold(Moments::default(), |a, b| a.merge(&b))
            .stats()
            .unwrap();
        assert_eq!(whole.count, merged.count);
        assert!(
            (whole.mean - merged.mean).abs() < 1e-12,
            "{whole:?} {merged:?}"
        );
        assert!(
            (whole.std - merged.std).abs() < 1e-12,
            "{whole:?} {merged:?}"
        );
    }

    #[test]
    fn huge_and_tiny_magnitudes_stay_finite_and_exact() {
        // 1e300 · (1, 2, 3): mean 2e300, population std sqrt(2/3)·1e300; a naive sum of
        // squares overflows to infinity.
        let s = stats(&[1e300, 2e300, 3e300]);
        assert!((s.mean / 2e300 - 1.0).abs() < 1e-15, "{s:?}");
        assert!((s.std / ((2.0f64 / 3.0).sqrt() * 1e300) - 1.0).abs() < 1e-15);
        let s = stats(&[f64::MAX, f64::MAX]);
        assert_eq!((s.mean, s.std), (f64::MAX, 0.0));
        // Chunks at very different scales merge without losing the large one.
        let m = Moments::of(&[1e-300]).merge(&Moments::of(&[1e300]));
        let s = m.stats().unwrap();
        assert!((s.mean / 5e299 - 1.0).abs() < 1e-15, "{s:?}");
        // Int32 values near 1e8 (f32 rounds them to multiples of 8).
        let s = stats(&[100_000_001.0, 100_000_002.0, 100_000_006.0]);
        assert_eq!((s.mean, s.count), (100_000_003.0, 3));
    }

    #[test]
    fn infinities_and_empty_sets() {
        let s = stats(&[1.0, f64::INFINITY]);
        assert_eq!((s.min, s.max, s.count), (1.0, f64::INFINITY, 2));
        assert!(s.mean.is_nan() && s.std.is_nan());
        assert!(Moments::of(&[]).stats().is_none());
        assert_eq!(
            Moments::default().merge(&Moments::of(&[4.0])).stats(),
            Some(stats(&[4.0]))
        );
    }
}
