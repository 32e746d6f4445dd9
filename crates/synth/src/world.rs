//! The synthetic world: terrain, land cover, seasonal reflectance and LST.

use amun_indices::{
    landcover_raster, mndwi, ndbi, ndvi, slope_aspect, Covariate, Covariates, Igbp, SlopeParams,
};
use amun_raster::{Grid, Raster, Stack};
use ndarray::Array2;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::noise::{mix, normal, stream, Fbm};
use crate::params::{WorldParams, WorldValidParams};
use crate::physics::*;

/// Random streams of a world (one per field), so fields do not share randomness.
mod tag {
    pub const TERRAIN: u64 = 1;
    pub const MOISTURE: u64 = 2;
    pub const SETTLEMENT: u64 = 3;
    pub const VIGOUR: u64 = 4;
    pub const BRIGHTNESS: u64 = 5;
    pub const SPECKLE: u64 = 6;
    pub const LST_NOISE: u64 = 7;
}

/// A field computed row by row in parallel; each pixel is a pure function of its position,
/// so the result does not depend on the thread count.
fn par_field(h: usize, w: usize, f: impl Fn(usize, usize) -> f32 + Sync) -> Array2<f32> {
    let mut v = vec![0.0f32; h * w];
    v.par_chunks_mut(w).enumerate().for_each(|(r, row)| {
        for (c, o) in row.iter_mut().enumerate() {
            *o = f(r, c);
        }
    });
    // The buffer has h·w values, so the shape always fits.
    Array2::from_shape_vec((h, w), v).expect("buffer has rows × cols values")
}

/// Mean of `a` over a `(2r+1)²` box clipped to the grid (summed-area table, sequential
/// f64 sums: deterministic).
fn box_mean(a: &Array2<f32>, r: usize) -> Array2<f32> {
    let (h, w) = a.dim();
    let mut sat = vec![0.0f64; (h + 1) * (w + 1)];
    for i in 0..h {
        let mut row = 0.0;
        for j in 0..w {
            row += f64::from(a[(i, j)]);
            sat[(i + 1) * (w + 1) + j + 1] = sat[i * (w + 1) + j + 1] + row;
        }
    }
    par_field(h, w, |i, j| {
        let (i0, i1) = (i.saturating_sub(r), (i + r + 1).min(h));
        let (j0, j1) = (j.saturating_sub(r), (j + r + 1).min(w));
        let s = sat[i1 * (w + 1) + j1] - sat[i0 * (w + 1) + j1] - sat[i1 * (w + 1) + j0]
            + sat[i0 * (w + 1) + j0];
        (s / ((i1 - i0) * (j1 - j0)) as f64) as f32
    })
}

/// The `q`-quantile (0–1) of the values (nearest rank).
fn quantile(values: &[f32], q: f64) -> f32 {
    if values.is_empty() {
        return f32::NAN;
    }
    let mut v = values.to_vec();
    let k = ((q.clamp(0.0, 1.0) * (v.len() - 1) as f64).round() as usize).min(v.len() - 1);
    let (_, x, _) = v.select_nth_unstable_by(k, f32::total_cmp);
    *x
}

/// Mean and population standard deviation, rows summed in parallel and combined in order.
fn mean_std(a: &Array2<f32>) -> (f64, f64) {
    let n = a.len() as f64;
    let sums: Vec<(f64, f64)> = a
        .outer_iter()
        .collect::<Vec<_>>()
        .par_iter()
        .map(|row| {
            row.iter().fold((0.0, 0.0), |(s, s2), &v| {
                let v = f64::from(v);
                (s + v, s2 + v * v)
            })
        })
        .collect();
    let (s, s2) = sums
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let mean = s / n;
    (mean, (s2 / n - mean * mean).max(0.0).sqrt())
}

fn check_month(month: u32) -> Result<f64> {
    MID_MONTH_DOY
        .get((month as usize).wrapping_sub(1))
        .copied()
        .ok_or(Error::InvalidMonth { month })
}

fn check_hour(hour: u32) -> Result<f64> {
    if hour < 24 {
        Ok(f64::from(hour))
    } else {
        Err(Error::InvalidHour { hour })
    }
}

/// Surface reflectance of one month: green, red, NIR and SWIR bands.
#[derive(Debug, Clone, PartialEq)]
pub struct Reflectances {
    /// Green (MODIS b04).
    pub green: Raster,
    /// Red (MODIS b01).
    pub red: Raster,
    /// Near infrared (MODIS b02).
    pub nir: Raster,
    /// Shortwave infrared (MODIS b06).
    pub swir: Raster,
}

impl Reflectances {
    /// Broadband albedo proxy: the mean of the four bands.
    pub fn albedo(&self) -> Raster {
        let mut out = self.green.clone();
        ndarray::Zip::from(out.data_mut())
            .and(self.red.data())
            .and(self.nir.data())
            .and(self.swir.data())
            .for_each(|g, &r, &n, &s| *g = 0.25 * (*g + r + n + s));
        out
    }
}

/// Names of the LST terms returned by [`World::lst_terms`], in order; they sum to the LST.
pub const LST_TERMS: [&str; 11] = [
    "base",
    "lapse",
    "solar",
    "albedo",
    "vegetation",
    "moisture",
    "urban",
    "pooling",
    "water",
    "snow",
    "noise",
];

/// A deterministic synthetic world with known fine-scale truth.
///
/// Generated once from [`WorldParams`] (terrain, moisture, land cover, slope and aspect,
/// settlement, vegetation vigour); covariates and LST are computed on demand for any month
/// (1–12) and hour (0–23, local solar time) on the same terrain.
#[derive(Debug, Clone)]
pub struct World {
    params: WorldParams,
    grid: Grid,
    lats: Vec<f64>,
    elevation: Raster,
    landcover: Raster,
    slope: Raster,
    aspect: Raster,
    classes: Array2<u8>,
    moisture: Array2<f32>,
    vigour: Array2<f32>,
    brightness: Array2<f32>,
    tpi: Array2<f32>,
    urban_density: Array2<f32>,
}

impl World {
    /// Generates a world.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] from [`WorldParams::check`]; grid errors cannot happen for
    /// checked parameters but are passed on.
    pub fn generate(params: &WorldParams) -> Result<World> {
        let WorldValidParams(p) = params.clone().check()?;
        let (w, h) = (p.width, p.height);
        let res = p.res_deg;
        let (west, north) = p.origin();
        let grid = Grid::geographic(west, north, res, w, h)?;
        let lats: Vec<f64> = (0..h).map(|r| grid.pixel_center(0, r).1).collect();
        let lon = |c: usize| west + (c as f64 + 0.5) * res;
        let seed = p.seed;

        // 1. Fractal terrain: fBm in degrees / wavelength, octaves down to 2 pixels.
        let wl = p.terrain_wavelength_deg;
        let octaves = ((wl / (2.0 * res)).log2().ceil() as u32).clamp(1, 14);
        let f_terrain = Fbm::new(stream(seed, tag::TERRAIN), octaves, p.roughness);
        let raw = par_field(h, w, |r, c| f_terrain.at(lon(c) / wl, lats[r] / wl) as f32);
        let flat: Vec<f32> = raw.iter().copied().collect();
        let lake = quantile(&flat, p.water_fraction);
        let top = flat.iter().copied().fold(f32::MIN, f32::max);
        let span = f64::from(top - lake).max(1e-9);
        let (base, relief) = (p.base_elevation_m, p.relief_m);
        let elevation = raw.mapv(|v| {
            let t = (f64::from(v - lake) / span).clamp(0.0, 1.0);
            (base + relief * t.powf(1.5)) as f32
        });
        let is_water = raw.mapv(|v| p.water_fraction > 0.0 && v < lake);
        let elevation = Raster::new(grid.clone(), elevation)?;

        // 2. Slope and aspect (Horn, metres per row from latitude on WGS 84).
        let terrain = slope_aspect(&elevation, &SlopeParams::new())?;

        // 3. Topographic position (elevation minus its surrounding mean).
        let px_km = res * KM_PER_DEG;
        let pool_r = ((POOL_RADIUS_KM / px_km).round() as usize).max(2);
        let mean_z = box_mean(elevation.data(), pool_r);
        let tpi = elevation.data() - &mean_z;

        // 4. Moisture 0–1: noise, drier with height, wetter in hollows.
        let f_moist = Fbm::new(stream(seed, tag::MOISTURE), 3, 0.5);
        let z = elevation.data();
        let moisture = par_field(h, w, |r, c| {
            let n = f_moist.at(lon(c) / (0.5 * wl), lats[r] / (0.5 * wl));
            let zr = (f64::from(z[(r, c)]) - base) / relief.max(1.0);
            let hollow = -f64::from(tpi[(r, c)]) / 200.0;
            (0.55 + 0.35 * n - 0.35 * zr + 0.25 * hollow).clamp(0.0, 1.0) as f32
        });

        // 5. Land cover.
        let f_settle = Fbm::new(stream(seed, tag::SETTLEMENT), 3, 0.5);
        let settle = par_field(h, w, |r, c| {
            f_settle.at(lon(c) / 0.25, lats[r] / 0.25) as f32
        });
        let slope = terrain.slope.data();
        let suitable = |r: usize, c: usize| {
            !is_water[(r, c)]
                && slope[(r, c)] < 8.0
                && (f64::from(z[(r, c)]) - base) < 0.4 * relief
                && f64::from(z[(r, c)]) < p.treeline_m
        };
        let candidates: Vec<f32> = (0..h)
            .flat_map(|r| (0..w).map(move |c| (r, c)))
            .filter(|&(r, c)| suitable(r, c))
            .map(|(r, c)| settle[(r, c)])
            .collect();
        let urban_thr = if p.urban_fraction > 0.0 {
            quantile(&candidates, 1.0 - p.urban_fraction)
        } else {
            f32::INFINITY
        };
        let classes = Array2::from_shape_fn((h, w), |(r, c)| {
            let zz = f64::from(z[(r, c)]);
            let m = moisture[(r, c)];
            let class = if is_water[(r, c)] {
                Igbp::Water
            } else if zz >= p.snow_line_m {
                Igbp::SnowIce
            } else if zz >= p.treeline_m || m < 0.15 {
                Igbp::Barren
            } else if suitable(r, c) && settle[(r, c)] >= urban_thr {
                Igbp::UrbanBuiltUp
            } else if m > 0.62 {
                Igbp::MixedForest
            } else if slope[(r, c)] < 10.0 && (zz - base) < 0.35 * relief && m > 0.3 {
                Igbp::Cropland
            } else {
                Igbp::Grassland
            };
            class.code()
        });
        let landcover = landcover_raster(Raster::new(grid.clone(), classes.mapv(f32::from))?)?;

        // 6. Vegetation vigour and soil brightness (multiplicative spectral variation).
        let f_vig = Fbm::new(stream(seed, tag::VIGOUR), 2, 0.5);
        let vigour = par_field(h, w, |r, c| {
            let n = f_vig.at(lon(c) / 0.08, lats[r] / 0.08);
            (0.6 + 0.6 * f64::from(moisture[(r, c)]) + 0.15 * n).clamp(0.3, 1.4) as f32
        });
        let f_bright = Fbm::new(stream(seed, tag::BRIGHTNESS), 1, 0.5);
        let brightness = par_field(h, w, |r, c| {
            f_bright.at(lon(c) / 0.05, lats[r] / 0.05) as f32
        });

        // 7. Urban density: share of built-up pixels in a box around each pixel.
        let urban_r = ((URBAN_RADIUS_KM / px_km).round() as usize).max(1);
        let is_urban = classes.mapv(|k| f32::from(u8::from(k == Igbp::UrbanBuiltUp.code())));
        let urban_density = box_mean(&is_urban, urban_r);

        Ok(World {
            params: p,
            grid,
            lats,
            elevation,
            landcover,
            slope: terrain.slope,
            aspect: terrain.aspect,
            classes,
            moisture,
            vigour,
            brightness,
            tpi,
            urban_density,
        })
    }

    /// The parameters the world was generated from.
    pub fn params(&self) -> &WorldParams {
        &self.params
    }

    /// The fine grid (EPSG:4326).
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Elevation above sea level (m).
    pub fn elevation(&self) -> &Raster {
        &self.elevation
    }

    /// Land cover: IGBP codes, categorical.
    pub fn landcover(&self) -> &Raster {
        &self.landcover
    }

    /// Slope (degrees, Horn).
    pub fn slope(&self) -> &Raster {
        &self.slope
    }

    /// Aspect (degrees clockwise from north; 0 where flat).
    pub fn aspect(&self) -> &Raster {
        &self.aspect
    }

    /// Soil moisture index (0–1), the hidden driver of vegetation and evaporative cooling.
    pub fn moisture(&self) -> Raster {
        // The field was computed on this grid's shape in `generate`, so this cannot fail.
        Raster::new(self.grid.clone(), self.moisture.clone())
            .expect("moisture has the grid's shape")
    }

    /// Standard deviation of the LST noise (K): the irreducible error floor.
    pub fn noise_std(&self) -> f64 {
        self.params.noise_std_k
    }

    fn class_at(&self, r: usize, c: usize) -> Igbp {
        // Codes were produced from `Igbp` values in `generate`.
        Igbp::from_code(self.classes[(r, c)]).unwrap_or(Igbp::Grassland)
    }

    /// Surface reflectance of a month: per class, `dormant + (peak − dormant)·g`, with the
    /// pixel's greenness `g` = class greenness × vigour, times `1 + 0.06·brightness`, plus
    /// white noise of 0.004.
    ///
    /// # Errors
    /// [`Error::InvalidMonth`].
    pub fn reflectance(&self, month: u32) -> Result<Reflectances> {
        let doy = check_month(month)?;
        let (h, w) = self.grid.shape();
        let speckle = stream(self.params.seed, tag::SPECKLE ^ (u64::from(month) << 8));
        // Greenness per row and class code (it depends on latitude only).
        let green: Vec<[f64; 18]> = self
            .lats
            .iter()
            .map(|&lat| {
                let mut g = [0.0; 18];
                for class in Igbp::ALL {
                    g[usize::from(class.code())] = class_greenness(class, lat, doy);
                }
                g
            })
            .collect();
        let band = |b: usize| {
            par_field(h, w, |r, c| {
                let class = self.class_at(r, c);
                let (dormant, peak) = spectra(class);
                let g = (green[r][usize::from(class.code())] * f64::from(self.vigour[(r, c)]))
                    .clamp(0.0, 1.0);
                let pix = ((r * w + c) as u64) << 3 | b as u64;
                let eps = normal(mix(speckle ^ pix));
                let v = (dormant[b] + (peak[b] - dormant[b]) * g)
                    * (1.0 + 0.06 * f64::from(self.brightness[(r, c)]))
                    + 0.004 * eps;
                v.max(0.001) as f32
            })
        };
        let raster = |b: usize| Raster::new(self.grid.clone(), band(b));
        Ok(Reflectances {
            green: raster(0)?,
            red: raster(1)?,
            nir: raster(2)?,
            swir: raster(3)?,
        })
    }

    /// The fine covariates of a month, in the model's order (see `amun_indices::Covariate`):
    /// `ndvi, landcover, reflectance, mndwi, ndbi, slope, aspect`. NDVI, MNDWI and NDBI come
    /// from the month's reflectance through `amun-indices`; `reflectance` is the broadband
    /// albedo proxy; land cover is IGBP codes (categorical). Add
    /// [`World::elevation`] with `Covariates::extra` if a model should see it.
    ///
    /// # Errors
    /// [`Error::InvalidMonth`].
    pub fn covariates(&self, month: u32) -> Result<Stack> {
        let refl = self.reflectance(month)?;
        let stack = Covariates::new()
            .with(Covariate::Ndvi, ndvi(&refl.nir, &refl.red)?)
            .with(Covariate::Landcover, self.landcover.clone())
            .with(Covariate::Reflectance, refl.albedo())
            .with(Covariate::Mndwi, mndwi(&refl.green, &refl.swir)?)
            .with(Covariate::Ndbi, ndbi(&refl.swir, &refl.nir)?)
            .with(Covariate::Slope, self.slope.clone())
            .with(Covariate::Aspect, self.aspect.clone())
            .build()?;
        Ok(stack)
    }

    /// The spatially correlated noise of one (month, hour): fBm over pixel coordinates with
    /// the configured correlation length, shifted and scaled to mean 0 and standard deviation
    /// `noise_std_k` exactly.
    fn noise(&self, month: u32, hour: u32) -> Array2<f32> {
        let (h, w) = self.grid.shape();
        let sd = self.params.noise_std_k;
        if sd <= 0.0 {
            return Array2::zeros((h, w));
        }
        let s = stream(
            self.params.seed,
            tag::LST_NOISE ^ (u64::from(month) << 8) ^ (u64::from(hour) << 16),
        );
        let l = self.params.noise_corr_px;
        let f = Fbm::new(s, 3, 0.5);
        let raw = par_field(h, w, |r, c| f.at(c as f64 / l, r as f64 / l) as f32);
        let (m, s_raw) = mean_std(&raw);
        let scale = if s_raw > 0.0 { sd / s_raw } else { 0.0 };
        raw.mapv(|v| ((f64::from(v) - m) * scale) as f32)
    }

    /// Computes the LST and, when asked, each term.
    fn compute_lst(
        &self,
        month: u32,
        hour: u32,
        keep_terms: bool,
    ) -> Result<(Array2<f32>, Vec<Array2<f32>>)> {
        let doy = check_month(month)?;
        let hr = check_hour(hour)?;
        let (h, w) = self.grid.shape();
        let refl = self.reflectance(month)?;
        let veg = ndvi(&refl.nir, &refl.red)?;
        let albedo = refl.albedo();
        let noise = self.noise(month, hour);
        let lapse = self.params.lapse_rate_k_per_km / 1000.0;
        let n_terms = LST_TERMS.len();

        // Per-row sun geometry and base temperature.
        struct Row {
            sin_e: f64,
            sun_az: f64,
            land_base: f64,
            water_base: f64,
        }
        let rows: Vec<Row> = self
            .lats
            .iter()
            .map(|&lat| {
                let (sin_e, sun_az) = sun(lat, doy, hr);
                let diurnal = DIURNAL_K * (sin_e.max(0.0) - mean_daylight(lat, doy));
                Row {
                    sin_e,
                    sun_az,
                    land_base: base_seasonal(lat, doy, 0.0, 1.0) + diurnal,
                    water_base: base_seasonal(lat, doy, WATER_LAG_DAYS, WATER_SEASON)
                        + WATER_DIURNAL * diurnal,
                }
            })
            .collect();

        let terms_at = |r: usize, c: usize| -> [f64; 11] {
            let row = &rows[r];
            let class = self.class_at(r, c);
            let z = f64::from(self.elevation.data()[(r, c)]);
            let day = row.sin_e.max(0.0);
            let night = (1.0 - row.sin_e / 0.1).clamp(0.0, 1.0);
            let mut t = [0.0f64; 11];
            t[0] = row.land_base;
            t[1] = -lapse * z;
            t[10] = f64::from(noise[(r, c)]);
            if class == Igbp::Water {
                // Water: damped, lagged cycle replaces every land surface term.
                t[8] = row.water_base - row.land_base;
                return t;
            }
            let a = f64::from(albedo.data()[(r, c)]);
            if day > 0.0 {
                let s = f64::from(self.slope.data()[(r, c)]).to_radians();
                let asp = f64::from(self.aspect.data()[(r, c)]);
                let cos_z = day;
                let sin_z = (1.0 - cos_z * cos_z).max(0.0).sqrt();
                let cos_i =
                    s.cos() * cos_z + s.sin() * sin_z * (row.sun_az - asp).to_radians().cos();
                t[2] = SLOPE_SOLAR_K * (1.0 - a) * (cos_i.max(0.0) - cos_z);
            }
            t[3] = -ALBEDO_K * (a - ALBEDO_REF) * day;
            let v = f64::from(veg.data()[(r, c)]).max(0.0);
            t[4] = -VEG_DAY_K * v * day + VEG_NIGHT_K * v * night;
            t[5] = -MOIST_DAY_K * f64::from(self.moisture[(r, c)]) * day;
            let u = f64::from(self.urban_density[(r, c)]);
            t[6] = u * (URBAN_NIGHT_K + URBAN_DAY_K * day);
            let depth = (-f64::from(self.tpi[(r, c)]) / POOL_DEPTH_M).clamp(0.0, 1.0);
            t[7] = -POOL_K * depth * night;
            if class == Igbp::SnowIce {
                let sum: f64 = t.iter().sum();
                t[9] = (MELT_K - sum).min(0.0);
            }
            t
        };

        let lst = par_field(h, w, |r, c| terms_at(r, c).iter().sum::<f64>() as f32);
        let terms = if keep_terms {
            (0..n_terms)
                .map(|i| par_field(h, w, |r, c| terms_at(r, c)[i] as f32))
                .collect()
        } else {
            Vec::new()
        };
        Ok((lst, terms))
    }

    /// Fine LST truth (K) for a month (1–12) and local solar hour (0–23).
    ///
    /// The sum of the terms of [`World::lst_terms`]; see the crate README for each formula.
    ///
    /// # Errors
    /// [`Error::InvalidMonth`], [`Error::InvalidHour`].
    pub fn lst(&self, month: u32, hour: u32) -> Result<Raster> {
        let (lst, _) = self.compute_lst(month, hour, false)?;
        Ok(Raster::new(self.grid.clone(), lst)?)
    }

    /// Each term of the LST model as a band named as in [`LST_TERMS`] (K); they sum to
    /// [`World::lst`] (up to f32 rounding).
    ///
    /// # Errors
    /// As [`World::lst`].
    pub fn lst_terms(&self, month: u32, hour: u32) -> Result<Stack> {
        let (_, terms) = self.compute_lst(month, hour, true)?;
        let mut stack = Stack::new(self.grid.clone());
        for (name, t) in LST_TERMS.iter().zip(terms) {
            stack.push(*name, Raster::new(self.grid.clone(), t)?)?;
        }
        Ok(stack)
    }

    /// Coarse LST: the fine truth block-averaged over `k × k` pixels (missing pixels
    /// ignored), on `grid().coarsen(k)`.
    ///
    /// # Errors
    /// [`Error::InvalidFactor`] unless `k ≥ 1` divides both sides; as [`World::lst`].
    pub fn coarse_lst(&self, month: u32, hour: u32, k: usize) -> Result<Raster> {
        let (h, w) = self.grid.shape();
        if k == 0 || w % k != 0 || h % k != 0 {
            return Err(Error::InvalidFactor {
                k,
                width: w,
                height: h,
            });
        }
        Ok(self.lst(month, hour)?.block_mean(k, 0.0)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_raster::{resample, Resampling};

    fn small(seed: u64) -> World {
        World::generate(&WorldParams::new().seed(seed).size(160, 160)).unwrap()
    }

    fn bits(r: &Raster) -> Vec<u32> {
        r.data().iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn same_seed_same_world_across_runs_and_thread_counts() {
        let p = WorldParams::new().seed(11).size(96, 64);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let w = World::generate(&p).unwrap();
                let cov = w.covariates(5).unwrap();
                let mut out = vec![bits(w.elevation()), bits(w.landcover())];
                out.extend(cov.bands().iter().map(bits));
                out.push(bits(&w.lst(5, 14).unwrap()));
                out.push(bits(&w.coarse_lst(5, 14, 8).unwrap()));
                out
            })
        };
        let one = run(1);
        assert_eq!(one, run(1), "two runs differ");
        assert_eq!(one, run(3), "1 vs 3 threads differ");
        let other = World::generate(&p.clone().seed(12)).unwrap();
        assert_ne!(
            one[0],
            bits(other.elevation()),
            "seeds 11 and 12 give one terrain"
        );
    }

    #[test]
    fn grids_terms_and_errors() {
        let w = small(3);
        assert_eq!(w.grid().crs(), Some(&amun_raster::Crs::WGS84));
        assert!((w.grid().pixel_width() - 0.01).abs() < 1e-12);
        let coarse = w.coarse_lst(1, 3, 10).unwrap();
        assert_eq!(w.grid().refinement_of(coarse.grid()).unwrap(), 10);
        // The coarse field is the block mean of the fine one.
        let fine = w.lst(1, 3).unwrap();
        let block = fine.data().slice(ndarray::s![10..20, 30..40]);
        let mean = block.iter().map(|&v| f64::from(v)).sum::<f64>() / 100.0;
        assert!((f64::from(coarse.data()[(1, 3)]) - mean).abs() < 1e-3);
        // The terms add up to the LST.
        let terms = w.lst_terms(1, 3).unwrap();
        assert_eq!(terms.names(), LST_TERMS);
        for (r, c) in [(0, 0), (50, 70), (159, 159)] {
            let sum: f64 = terms
                .bands()
                .iter()
                .map(|b| f64::from(b.data()[(r, c)]))
                .sum();
            assert!((sum - f64::from(fine.data()[(r, c)])).abs() < 1e-3);
        }
        // The noise term has the documented amplitude.
        let noise = terms.band("noise").unwrap().stats().unwrap();
        assert!((noise.std - w.noise_std()).abs() < 1e-3 && noise.mean.abs() < 1e-3);
        assert!(matches!(
            w.lst(13, 0),
            Err(Error::InvalidMonth { month: 13 })
        ));
        assert!(matches!(w.lst(0, 0), Err(Error::InvalidMonth { month: 0 })));
        assert!(matches!(w.lst(1, 24), Err(Error::InvalidHour { hour: 24 })));
        assert!(matches!(
            w.coarse_lst(1, 0, 7),
            Err(Error::InvalidFactor { k: 7, .. })
        ));
        assert!(matches!(
            World::generate(&WorldParams::new().res_deg(0.0)),
            Err(Error::InvalidParameter {
                name: "res_deg",
                ..
            })
        ));
    }

    #[test]
    fn southern_and_tiny_worlds() {
        // South of the equator January is summer; a 16×16 world (the smallest) works.
        let p = WorldParams::new().seed(9).size(16, 16).center(-35.0, 20.0);
        let w = World::generate(&p).unwrap();
        let jan = w.lst(1, 14).unwrap().stats().unwrap().mean;
        let jul = w.lst(7, 14).unwrap().stats().unwrap().mean;
        assert!(jan > jul + 10.0, "January {jan} K vs July {jul} K at 35° S");
        assert_eq!(w.covariates(1).unwrap().len(), 7);
        // No water and no urban when the fractions are zero.
        let dry = World::generate(&p.clone().water_fraction(0.0).urban_fraction(0.0)).unwrap();
        let codes = dry.landcover().data();
        assert!(codes
            .iter()
            .all(|&c| c as u8 != Igbp::Water.code() && c as u8 != Igbp::UrbanBuiltUp.code()));
    }

    /// Mean of `v` over pixels where `keep` holds.
    fn mean_where(v: &Raster, keep: impl Fn(usize, usize) -> bool) -> f64 {
        let (mut s, mut n) = (0.0, 0usize);
        for ((r, c), &x) in v.data().indexed_iter() {
            if keep(r, c) && !x.is_nan() {
                s += f64::from(x);
                n += 1;
            }
        }
        assert!(n > 0, "no pixel selected");
        s / n as f64
    }

    #[test]
    fn physics_has_the_documented_signs() {
        let w = small(5);
        let lc = w.landcover().data();
        let is = |class: Igbp| move |r: usize, c: usize| lc[(r, c)] as u8 == class.code();
        let (jan_night, jul_noon) = (w.lst(1, 2).unwrap(), w.lst(7, 13).unwrap());
        let jul_night = w.lst(7, 2).unwrap();
        let all = |_: usize, _: usize| true;
        // Seasons and days: July noon ≫ July night > January night (34° N).
        assert!(mean_where(&jul_noon, all) > mean_where(&jul_night, all) + 5.0);
        assert!(mean_where(&jul_night, all) > mean_where(&jan_night, all) + 10.0);
        // Water's diurnal range is much smaller than land's.
        let range = |class| mean_where(&jul_noon, is(class)) - mean_where(&jul_night, is(class));
        assert!(range(Igbp::Water) < 0.4 * range(Igbp::Cropland));
        // Lapse rate: the lapse term is −6.5 K/km × elevation exactly.
        let terms = w.lst_terms(7, 13).unwrap();
        let z = w.elevation().data()[(80, 80)];
        let lapse = terms.band("lapse").unwrap().data()[(80, 80)];
        assert!((f64::from(lapse) + 6.5e-3 * f64::from(z)).abs() < 1e-3);
        // Sunlit (south-facing, steep) slopes gain heat at noon; north-facing ones lose it.
        let (slope, aspect) = (w.slope().data(), w.aspect().data());
        let solar = terms.band("solar").unwrap();
        let south = mean_where(solar, |r, c| {
            slope[(r, c)] > 5.0 && (aspect[(r, c)] - 180.0).abs() < 30.0
        });
        let north = mean_where(solar, |r, c| {
            slope[(r, c)] > 5.0 && (aspect[(r, c)] < 30.0 || aspect[(r, c)] > 330.0)
        });
        assert!(south > 0.0 && north < 0.0, "south {south}, north {north}");
        // Urban heat and vegetation cooling by day; pooling only at night.
        let urban = terms.band("urban").unwrap();
        assert!(mean_where(urban, is(Igbp::UrbanBuiltUp)) > 2.0);
        assert!(mean_where(terms.band("vegetation").unwrap(), is(Igbp::MixedForest)) < -3.0);
        assert!(terms.band("pooling").unwrap().stats().unwrap().min.abs() < 1e-9);
        let night = w.lst_terms(7, 2).unwrap();
        assert!(night.band("pooling").unwrap().stats().unwrap().min < -1.0);
        // Snow never exceeds the melting point.
        let snowy = World::generate(
            &WorldParams::new()
                .seed(5)
                .size(64, 64)
                .snow_line_m(1000.0)
                .treeline_m(900.0),
        )
        .unwrap();
        let hot = snowy.lst(7, 13).unwrap();
        let snow = snowy.landcover().data();
        for ((r, c), &t) in hot.data().indexed_iter() {
            if snow[(r, c)] as u8 == Igbp::SnowIce.code() {
                assert!(f64::from(t) <= MELT_K + 1e-3);
            }
        }
    }

    /// Least squares `y ≈ X b` by the normal equations (Gaussian elimination with partial
    /// pivoting); returns R².
    #[allow(clippy::needless_range_loop)] // dense linear algebra reads best with indices
    fn r_squared(x: &[Vec<f64>], y: &[f64]) -> f64 {
        let p = x[0].len();
        let mut a = vec![vec![0.0; p + 1]; p];
        for (row, &t) in x.iter().zip(y) {
            for i in 0..p {
                for j in 0..p {
                    a[i][j] += row[i] * row[j];
                }
                a[i][p] += row[i] * t;
            }
        }
        for i in 0..p {
            a[i][i] += 1e-9;
        }
        for col in 0..p {
            let piv = (col..p)
                .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
                .unwrap();
            a.swap(col, piv);
            for r in 0..p {
                if r != col {
                    let f = a[r][col] / a[col][col];
                    for k in col..=p {
                        a[r][k] -= f * a[col][k];
                    }
                }
            }
        }
        let b: Vec<f64> = (0..p).map(|i| a[i][p] / a[i][i]).collect();
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        let (mut ss_res, mut ss_tot) = (0.0, 0.0);
        for (row, &t) in x.iter().zip(y) {
            let pred: f64 = row.iter().zip(&b).map(|(u, v)| u * v).sum();
            ss_res += (t - pred).powi(2);
            ss_tot += (t - mean).powi(2);
        }
        1.0 - ss_res / ss_tot
    }

    #[test]
    fn world_is_learnable_and_not_trivial() {
        // Bilinear upsampling of the 10× coarse LST must leave ≥ 1 K RMSE, and an ordinary
        // least-squares fit of that residual on the fine covariates' anomalies (fine minus
        // bilinear of their block means) must explain a clear part of it.
        let w = small(7);
        let (month, hour) = (7, 13);
        let truth = w.lst(month, hour).unwrap();
        let up = |r: &Raster| {
            resample(
                &r.block_mean(10, 0.0).unwrap(),
                w.grid(),
                Resampling::Bilinear,
            )
            .unwrap()
        };
        let base = up(&truth);
        let cov = w.covariates(month).unwrap();
        let mut features: Vec<Raster> = Vec::new();
        for name in ["ndvi", "reflectance", "mndwi", "ndbi", "slope"] {
            features.push(cov.band(name).unwrap().clone());
        }
        features.push(w.elevation().clone());
        let aspect = cov.band("aspect").unwrap();
        let slope = cov.band("slope").unwrap();
        // Southness × slope: the sunlit-slope signal a linear model can use.
        let southness = Raster::from_fn(w.grid().clone(), |(r, c)| {
            -aspect.data()[(r, c)].to_radians().cos() * slope.data()[(r, c)]
        });
        features.push(southness);
        let anomalies: Vec<Raster> = features
            .iter()
            .map(|f| {
                let mut a = f.clone();
                let u = up(f);
                ndarray::Zip::from(a.data_mut())
                    .and(u.data())
                    .for_each(|x, &m| *x -= m);
                a
            })
            .collect();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for ((r, c), &t) in truth.data().indexed_iter() {
            let row: Vec<f64> = std::iter::once(1.0)
                .chain(anomalies.iter().map(|a| f64::from(a.data()[(r, c)])))
                .collect();
            if row.iter().all(|v| v.is_finite()) {
                x.push(row);
                y.push(f64::from(t - base.data()[(r, c)]));
            }
        }
        let rmse = (y.iter().map(|v| v * v).sum::<f64>() / y.len() as f64).sqrt();
        assert!(
            rmse >= 1.0,
            "bilinear RMSE {rmse} K: the world is too smooth"
        );
        let r2 = r_squared(&x, &y);
        eprintln!("bilinear RMSE {rmse:.3} K, residual R² of the linear model {r2:.3}");
        assert!(
            r2 > 0.3,
            "linear model explains only R² = {r2} of the residual"
        );
        assert!(r2 < 0.99, "R² = {r2}: the residual is trivially linear");
    }
}
