//! World parameters (builder with documented defaults and a `check`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Parameters of a synthetic world. Every field has a default (see [`WorldParams::new`]);
/// the setters of the same names consume and return the builder; [`WorldParams::check`]
/// validates (and [`World::generate`](crate::World::generate) calls it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldParams {
    /// Random seed (default 42). Same seed and parameters → bit-identical world.
    pub seed: u64,
    /// Width in pixels (default 320: 32 coarse pixels at 10×, 20 patches of 16).
    pub width: usize,
    /// Height in pixels (default 320).
    pub height: usize,
    /// Pixel size in degrees (default 0.01°).
    pub res_deg: f64,
    /// Latitude of the centre, degrees (default 34° N).
    pub center_lat: f64,
    /// Longitude of the centre, degrees (default 108° E).
    pub center_lon: f64,
    /// Elevation of lake surfaces and the lowest land, metres (default 300).
    pub base_elevation_m: f64,
    /// Height of the highest point above `base_elevation_m`, metres (default 3000).
    pub relief_m: f64,
    /// Wavelength of the largest terrain features, degrees (default 1°).
    pub terrain_wavelength_deg: f64,
    /// Amplitude ratio between successive terrain octaves (each half the wavelength of the
    /// previous), 0.3–0.9 (default 0.7): higher is rougher, steeper terrain.
    pub roughness: f64,
    /// Share of the world that is water, 0–0.9 (default 0.05).
    pub water_fraction: f64,
    /// Share of gentle lowland (slope < 8°, lowest 40 % of the relief, below the treeline) that is urban, 0–1 (default 0.06).
    pub urban_fraction: f64,
    /// Elevation above which land is permanent snow and ice, metres (default 2900).
    pub snow_line_m: f64,
    /// Elevation above which land is barren, metres (default 2500).
    pub treeline_m: f64,
    /// Decrease of LST with elevation, K per km (default 6.5).
    pub lapse_rate_k_per_km: f64,
    /// Standard deviation of the spatially correlated LST noise, kelvin (default 0.5): the irreducible error floor of any downscaling of this world.
    pub noise_std_k: f64,
    /// Correlation length of the LST noise, fine pixels (default 3).
    pub noise_corr_px: f64,
}

impl Default for WorldParams {
    fn default() -> Self {
        Self {
            seed: 42,
            width: 320,
            height: 320,
            res_deg: 0.01,
            center_lat: 34.0,
            center_lon: 108.0,
            base_elevation_m: 300.0,
            relief_m: 3000.0,
            terrain_wavelength_deg: 1.0,
            roughness: 0.8,
            water_fraction: 0.05,
            urban_fraction: 0.06,
            snow_line_m: 2900.0,
            treeline_m: 2500.0,
            lapse_rate_k_per_km: 6.5,
            noise_std_k: 0.5,
            noise_corr_px: 3.0,
        }
    }
}

/// [`WorldParams`] that passed [`WorldParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct WorldValidParams(pub(crate) WorldParams);

impl std::ops::Deref for WorldValidParams {
    type Target = WorldParams;
    fn deref(&self) -> &WorldParams {
        &self.0
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

impl WorldParams {
    /// The defaults: seed 42; 320×320 pixels of 0.01° centred on 34° N, 108° E (the Qinling
    /// foreland, a mountain-and-basin landscape); lowest land 300 m, highest 3300 m
    /// (relief 3000 m), largest terrain wavelength 1°; 5 % water, about 6 % urban among
    /// gentle lowland; snow above 2900 m, bare ground above 2500 m; lapse rate 6.5 K/km;
    /// LST noise 0.5 K with a correlation length of 3 pixels.
    pub fn new() -> Self {
        Self::default()
    }

    setter!(/// Random seed (default 42). Same seed and parameters → bit-identical world.
        seed: u64);
    setter!(/// Pixel size in degrees (default 0.01°).
        res_deg: f64);
    setter!(/// Elevation of lake surfaces and the lowest land, metres (default 300).
        base_elevation_m: f64);
    setter!(/// Height of the highest point above `base_elevation_m`, metres (default 3000).
        relief_m: f64);
    setter!(/// Wavelength of the largest terrain features, degrees (default 1°).
        terrain_wavelength_deg: f64);
    setter!(/// Amplitude ratio between terrain octaves, 0.3–0.9 (default 0.7).
        roughness: f64);
    setter!(/// Share of the world that is water, 0–0.9 (default 0.05).
        water_fraction: f64);
    setter!(/// Share of gentle lowland (slope < 8°, lowest 40 % of the relief) that is urban,
        /// 0–1 (default 0.06).
        urban_fraction: f64);
    setter!(/// Elevation above which land is permanent snow and ice, metres (default 2900).
        snow_line_m: f64);
    setter!(/// Elevation above which land is barren, metres (default 2500).
        treeline_m: f64);
    setter!(/// Decrease of LST with elevation, K per km (default 6.5).
        lapse_rate_k_per_km: f64);
    setter!(/// Standard deviation of the spatially correlated LST noise, kelvin (default 0.5):
        /// the irreducible error floor of any downscaling of this world.
        noise_std_k: f64);
    setter!(/// Correlation length of the LST noise, fine pixels (default 3).
        noise_corr_px: f64);

    /// World size in pixels (default 320×320).
    pub fn size(mut self, width: usize, height: usize) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// Latitude and longitude of the world's centre, degrees (default 34° N, 108° E).
    pub fn center(mut self, lat: f64, lon: f64) -> Self {
        self.center_lat = lat;
        self.center_lon = lon;
        self
    }

    /// West and north edges of the world, snapped to whole pixels of the global
    /// `res_deg` lattice so that coarse grids (`k · res_deg`) nest in a global lattice too.
    pub fn origin(&self) -> (f64, f64) {
        let snap = |v: f64| (v / self.res_deg).round() * self.res_deg;
        (
            snap(self.center_lon - 0.5 * self.width as f64 * self.res_deg),
            snap(self.center_lat + 0.5 * self.height as f64 * self.res_deg),
        )
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first parameter out of range: sizes 16–8192,
    /// resolution 1e-5–1°, the world within ±85° latitude and ±180° longitude, non-negative
    /// finite heights with `treeline_m ≤ snow_line_m`, fractions in range, lapse rate 0–15
    /// K/km, noise 0–10 K with a correlation length of 0.5–100 pixels.
    pub fn check(self) -> Result<WorldValidParams> {
        let bad = |name: &'static str, value: String, reason: &'static str| {
            Err(Error::InvalidParameter {
                name,
                value,
                reason,
            })
        };
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if !(16..=8192).contains(&v) {
                return bad(name, v.to_string(), "must be 16–8192 pixels");
            }
        }
        if !(self.res_deg.is_finite() && (1e-5..=1.0).contains(&self.res_deg)) {
            return bad("res_deg", self.res_deg.to_string(), "must be 1e-5–1 degree");
        }
        let (west, north) = self.origin();
        let south = north - self.height as f64 * self.res_deg;
        let east = west + self.width as f64 * self.res_deg;
        if !(north.is_finite() && north <= 85.0 && south >= -85.0) {
            return bad(
                "center_lat",
                self.center_lat.to_string(),
                "the world must lie within ±85° latitude",
            );
        }
        if !(west.is_finite() && west >= -180.0 && east <= 180.0) {
            return bad(
                "center_lon",
                self.center_lon.to_string(),
                "the world must lie within ±180° longitude",
            );
        }
        let nonneg = [
            ("base_elevation_m", self.base_elevation_m),
            ("relief_m", self.relief_m),
            ("snow_line_m", self.snow_line_m),
            ("treeline_m", self.treeline_m),
        ];
        for (name, v) in nonneg {
            if !(v.is_finite() && (0.0..=9000.0).contains(&v)) {
                return bad(name, v.to_string(), "must be 0–9000 m");
            }
        }
        if self.treeline_m > self.snow_line_m {
            return bad(
                "treeline_m",
                self.treeline_m.to_string(),
                "must not exceed snow_line_m",
            );
        }
        if !(self.terrain_wavelength_deg.is_finite()
            && self.terrain_wavelength_deg >= 4.0 * self.res_deg)
        {
            return bad(
                "terrain_wavelength_deg",
                self.terrain_wavelength_deg.to_string(),
                "must be at least 4 pixels",
            );
        }
        if !(0.3..=0.9).contains(&self.roughness) {
            return bad("roughness", self.roughness.to_string(), "must be 0.3–0.9");
        }
        if !(0.0..=0.9).contains(&self.water_fraction) {
            return bad(
                "water_fraction",
                self.water_fraction.to_string(),
                "must be 0–0.9",
            );
        }
        if !(0.0..=1.0).contains(&self.urban_fraction) {
            return bad(
                "urban_fraction",
                self.urban_fraction.to_string(),
                "must be 0–1",
            );
        }
        if !(0.0..=15.0).contains(&self.lapse_rate_k_per_km) {
            return bad(
                "lapse_rate_k_per_km",
                self.lapse_rate_k_per_km.to_string(),
                "must be 0–15 K/km",
            );
        }
        if !(0.0..=10.0).contains(&self.noise_std_k) {
            return bad(
                "noise_std_k",
                self.noise_std_k.to_string(),
                "must be 0–10 K",
            );
        }
        if !(0.5..=100.0).contains(&self.noise_corr_px) {
            return bad(
                "noise_corr_px",
                self.noise_corr_px.to_string(),
                "must be 0.5–100 pixels",
            );
        }
        Ok(WorldValidParams(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_named() {
        let p = WorldParams::new().check().unwrap();
        assert_eq!((p.width, p.height), (320, 320));
        let (w, n) = p.origin();
        // 108 − 1.6 = 106.4, 34 + 1.6 = 35.6 (snapped to 0.01°).
        assert!((w - 106.4).abs() < 1e-9 && (n - 35.6).abs() < 1e-9);
        let e = WorldParams::new().size(8, 64).check().unwrap_err();
        assert!(e.to_string().contains("width"), "{e}");
        let e = WorldParams::new().center(89.0, 0.0).check().unwrap_err();
        assert!(e.to_string().contains("center_lat"), "{e}");
        let e = WorldParams::new().treeline_m(4000.0).check().unwrap_err();
        assert!(e.to_string().contains("treeline_m"), "{e}");
        let e = WorldParams::new()
            .noise_std_k(f64::NAN)
            .check()
            .unwrap_err();
        assert!(e.to_string().contains("noise_std_k"), "{e}");
    }
}
